"""tf.data input pipelines over a data directory: pairs joined to images inside tf.data.

    ds = make_dataset(data_dir, "open", "train", InputConfig(batch_size=24), training=True)
    for (image_a, image_b), target in ds: ...
    ds = make_dataset(data_dir, "open", {"train": 1.0, "synthetic-round-01": 0.5}, ...)
    ds = make_image_dataset(data_dir, "generator", InputConfig(), part="train", training=True)

The images a read needs (the image tables its splits refer to) are loaded once into an
`ImageStore`: decoded at the training size and kept in memory when they fit
`InputConfig.image_memory_mb`, kept encoded and decoded on use otherwise. Pair records carry
only ids, which map to rows of the store with a `tf.lookup` table; a batch's images are a
`tf.gather`. So shuffling, swapping and mixing move small index tuples, and augmentation runs
on whole batches.

Images come out as float32 RGB in [0, 1], (batch, size, size, 3); the models normalise them.
With `with_info=True` each element has a third part, a dict with `true_target` (-1 unknown),
`id_a` and `id_b`; targets of 0.5 mark equal pairs.

Training streams are infinite and reproducible: pass k over a split is shuffled with a seed made
from (seed, split, k), augmentation of batch n uses (seed, n), so `start_batch=n` continues the
stream of an interrupted run exactly where it stopped instead of replaying its first epoch.
"""
import dataclasses
import hashlib
import logging
import zlib

import numpy as np
import tensorflow as tf

from relattr_tf.data import schema
from relattr_tf.data.images import (ImageStore, allowed_augmentations, augment_batch,
                                    corrupt_shard_message, read_records)

AUTOTUNE = tf.data.AUTOTUNE
FOREVER = np.iinfo(np.int64).max


@dataclasses.dataclass(frozen=True)
class InputConfig:
    batch_size: int = 24
    image_size: int = 64
    augment: tuple = ("flip", "translate")  # used when training
    swap: bool = True  # add (j, i) with 1 - t for every (i, j) when training
    image_memory_mb: int = 2048  # decoded images above this stay encoded, decoded on use
    skip_corrupt: bool = False  # count-and-skip unreadable records instead of failing
    translate_pixels: int = 4  # at 64 px; scaled with image_size
    crop_min_fraction: float = 0.85


def _stable_hash(*keys):
    return zlib.crc32("|".join(str(k) for k in keys).encode("utf-8"))


def as_weights(splits):
    """'train', ['a', 'b'] or {'a': 1.0, 'b': 0.5} -> {split: weight}."""
    if isinstance(splits, str):
        return {splits: 1.0}
    if isinstance(splits, dict):
        return {s: float(w) for s, w in splits.items()}
    return {s: 1.0 for s in splits}


def pair_count(meta, data_dir, attribute, splits):
    """Pairs in the given splits, as recorded in metadata.json."""
    return sum(int(schema.pair_split(meta, data_dir, attribute, s)["pairs"])
               for s in as_weights(splits))


def image_tables_of(meta, data_dir, attribute, splits):
    tables = []
    for split in as_weights(splits):
        entry = schema.pair_split(meta, data_dir, attribute, split)
        tables += [t for t in entry.get("image_tables", []) if t not in tables]
    return tables


def image_store(meta, data_dir, attribute, splits, config):
    """The ImageStore of every image table the splits refer to."""
    return ImageStore(data_dir, image_tables_of(meta, data_dir, attribute, splits),
                      config.image_size, config.image_memory_mb, meta, config.skip_corrupt)


def pair_split_files(meta, data_dir, attribute, split):
    return schema.shard_paths(data_dir, schema.pair_split(meta, data_dir, attribute, split),
                              f"pair split {attribute}/{split}")


def _streamed_pair_rows(meta, data_dir, attribute, split, store, skip_corrupt):
    """Dataset of one split's pairs as dicts of rows into the store, targets and ids."""
    tables = ", ".join(store.tables)

    def lookup(serialized):
        pairs = schema.parse_pairs(serialized)
        pairs["row_a"], pairs["row_b"] = (store.rows(pairs[schema.ID_A]),
                                          store.rows(pairs[schema.ID_B]))
        if skip_corrupt:
            return pairs
        missing = tf.logical_or(pairs["row_a"] < 0, pairs["row_b"] < 0)
        first = tf.boolean_mask(tf.where(pairs["row_a"] < 0, pairs[schema.ID_A],
                                         pairs[schema.ID_B]), missing)[:1]
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(missing)),
            [f"pairs of {attribute}/{split} name an image that is not in the image tables "
             f"({tables}):", first])
        with tf.control_dependencies([check]):
            return {k: tf.identity(v) for k, v in pairs.items()}

    ds = read_records(pair_split_files(meta, data_dir, attribute, split))
    if skip_corrupt:
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(1024).map(lookup, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
    if skip_corrupt:
        ds = ds.filter(lambda p: tf.logical_and(p["row_a"] >= 0, p["row_b"] >= 0))
    keep = ("row_a", "row_b", schema.TARGET, schema.TRUE_TARGET, schema.ID_A, schema.ID_B)
    return ds.map(lambda p: {k: p[k] for k in keep})


def read_pairs(meta, data_dir, attribute, split, skip_corrupt=False):
    """A split's pair records as numpy arrays (ids, target, true_target), in file order."""
    files = pair_split_files(meta, data_dir, attribute, split)
    parts = {k: [] for k in (schema.ID_A, schema.ID_B, schema.TARGET, schema.TRUE_TARGET)}
    records = read_records(files)
    if skip_corrupt:
        records = records.ignore_errors(log_warning=True)
    try:
        for batch in records.batch(8192).map(schema.parse_pairs):
            for key in parts:
                parts[key].append(batch[key].numpy())
    except tf.errors.DataLossError as e:
        raise_for_unreadable(files, e)
    return {k: np.concatenate(v) if v else np.zeros(0, object if k.startswith("id") else
                                                     np.float32) for k, v in parts.items()}


def pair_rows(pairs, store, what, skip_corrupt=False):
    """Pairs (read_pairs) with `row_a` / `row_b` into the store; a pair naming an image the
    store lacks is a one-line DataError, or (skip_corrupt) dropped and counted in the log."""
    rows = {side: store.rows(tf.constant(pairs[key], tf.string)).numpy() if len(pairs[key])
            else np.zeros(0, np.int64) for side, key in (("a", schema.ID_A), ("b", schema.ID_B))}
    missing = (rows["a"] < 0) | (rows["b"] < 0)
    if missing.any():
        first = np.where(rows["a"] < 0, pairs[schema.ID_A], pairs[schema.ID_B])[missing][0]
        message = (f"{what}: {int(missing.sum())} pairs name images that are not in the image "
                   f"tables {', '.join(store.tables)} (first: {first.decode()})")
        if not skip_corrupt:
            raise schema.DataError(message)
        logging.warning("%s; those pairs are skipped", message)
    keep = ~missing
    out = {k: v[keep] for k, v in pairs.items()}
    out["row_a"], out["row_b"] = rows["a"][keep], rows["b"][keep]
    return out


def _swapped(pairs):
    """Every pair and its swapped copy (b, a) with targets 1 - t."""
    true = pairs[schema.TRUE_TARGET]
    swapped = {"row_a": pairs["row_b"], "row_b": pairs["row_a"],
               schema.ID_A: pairs[schema.ID_B], schema.ID_B: pairs[schema.ID_A],
               schema.TARGET: 1.0 - pairs[schema.TARGET],
               schema.TRUE_TARGET: np.where(true < 0, true, 1.0 - true).astype(np.float32)}
    return {k: np.concatenate([pairs[k], swapped[k]]) for k in swapped}


def _endless(arrays, seed):
    """Pass after pass over in-memory arrays, pass k in the order of a stateless shuffle
    seeded by (seed, k): any pass can be recomputed, so a resumed run continues the stream."""
    tensors = {k: tf.constant(v) for k, v in arrays.items()}
    count = len(next(iter(arrays.values())))

    def one_pass(k):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), k]))
        return tf.data.Dataset.from_tensor_slices(
            {key: tf.gather(t, order) for key, t in tensors.items()})

    return tf.data.Dataset.range(FOREVER).flat_map(one_pass)


def held_out(pairs, fraction, seed):
    """Which pairs of a training split are held out for validation: a stable hash of the seed
    and the pair's two ids in either order, so the part is the same for every model, shard
    layout and resume, and a pair and its swapped copy fall on the same side."""
    return np.asarray([_stable_hash(seed, *sorted((bytes(a), bytes(b)))) % 10_000
                       < fraction * 10_000 for a, b in zip(pairs[schema.ID_A],
                                                           pairs[schema.ID_B])], bool)


def make_dataset(data_dir, attribute, splits, config=InputConfig(), *, training, seed=0,
                 start_batch=0, with_info=False, meta=None, store=None, hold_out=None):
    """Batched ((image_a, image_b), target[, info]) of one attribute's pair split(s).

    splits: a split name, or {split: weight} to mix several in each batch (training).
    Training streams are endless; `start_batch` continues one after that many batches.
    hold_out: (fraction, seed): the first split's held-out pairs (`held_out`) are left out of
    training, and an evaluation stream (training=False) is those pairs alone: the validation
    part of a training split.
    """
    meta = meta or schema.read_metadata(data_dir)
    weights = as_weights(splits)
    if not training and len(weights) != 1:
        raise ValueError("evaluation reads one split at a time")
    augment = allowed_augmentations(meta, attribute, config.augment) if training else ()
    store = store or image_store(meta, data_dir, attribute, weights, config)
    streams, count = [], None
    for index, split in enumerate(weights):
        if not training and not hold_out:
            streams.append(_streamed_pair_rows(meta, data_dir, attribute, split, store,
                                      config.skip_corrupt))
            continue
        pairs = pair_rows(read_pairs(meta, data_dir, attribute, split, config.skip_corrupt), store,
                          f"{attribute}/{split}", config.skip_corrupt)
        if hold_out and index == 0:
            keep = held_out(pairs, *hold_out) != training
            pairs = {k: v[keep] for k, v in pairs.items()}
        if not training:
            streams.append(tf.data.Dataset.from_tensor_slices(pairs))
            count = len(pairs["row_a"])
            continue
        if not len(pairs["row_a"]):
            raise schema.DataError(f"{schema.metadata_path(data_dir)}: {attribute}/{split} has "
                                   f"no pairs to train on")
        streams.append(_endless(_swapped(pairs) if config.swap else pairs,
                                _stable_hash(seed, split)))
    if len(streams) == 1:
        ds = streams[0]
    else:
        total = sum(weights.values())
        ds = tf.data.Dataset.sample_from_datasets(
            streams, [w / total for w in weights.values()], seed=_stable_hash(seed, "mix"))
    if training and start_batch:
        ds = ds.skip(start_batch * config.batch_size)  # index tuples only: cheap
    ds = ds.batch(config.batch_size, drop_remainder=training)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(start_batch, FOREVER)))

    def materialize(pairs, index):
        images = []
        for side, rows in enumerate((pairs["row_a"], pairs["row_b"])):
            image = store.images(rows)
            if augment:
                image = augment_batch(image, tf.stack([tf.constant(2 * seed + side, tf.int64),
                                                       index]), augment, config)
            else:
                image = tf.cast(image, tf.float32) / 255.0
            images.append(image)
        pair = (images[0], images[1])
        if with_info:
            info = {k: pairs[k] for k in (schema.TRUE_TARGET, schema.ID_A, schema.ID_B)}
            return pair, pairs[schema.TARGET], info
        return pair, pairs[schema.TARGET]

    ds = ds.map(materialize, num_parallel_calls=AUTOTUNE, deterministic=True)
    if not training and (count is not None or not config.skip_corrupt):
        # Known length: Keras then ends evaluation without probing past the end, and a shard
        # set that disagrees with metadata.json fails loudly.
        count = pair_count(meta, data_dir, attribute, splits) if count is None else count
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-count // config.batch_size)))
    return ds.prefetch(AUTOTUNE)


# --------------------------------------------------------------------------- single images
def validation_rows(ids, fraction):
    """Which rows form the held-out part: a stable hash of the id, so a table that grows keeps
    its old images on the same side."""
    return np.asarray([_stable_hash(i) % 10_000 < fraction * 10_000 for i in ids], bool)


def make_image_dataset(data_dir, table, config=InputConfig(), *, part="train",
                       validation_fraction=0.1, training, seed=0, start_batch=0, meta=None,
                       store=None, target="strengths"):
    """Batched (image, strengths) of an image table (the generator's training set), or
    (image, labels) with target="labels" (the pretraining table).

    part: 'train' or 'validation' (a held-out `validation_fraction` by id), or 'all'.
    Training streams are endless, shuffled and augmented (flip / translate / crop).
    """
    if target not in ("strengths", "labels"):
        raise ValueError(f"target must be strengths or labels, got {target!r}")
    meta = meta or schema.read_metadata(data_dir)
    store = store or ImageStore(data_dir, [table], config.image_size, config.image_memory_mb,
                                meta, config.skip_corrupt)
    if part not in ("train", "validation", "all"):
        raise ValueError(f"part must be train, validation or all, got {part!r}")
    held_out = validation_rows(store.ids, validation_fraction)
    chosen = {"train": ~held_out, "validation": held_out, "all": np.ones_like(held_out)}[part]
    rows = np.flatnonzero(chosen)
    if len(rows):  # undecodable images (skipped with skip_corrupt) have no row
        rows = rows[store.rows(tf.constant(store.ids[rows].tolist(), tf.string)).numpy() >= 0]
    if not len(rows):
        raise schema.DataError(f"{schema.metadata_path(data_dir)}: image table {table!r} has no "
                               f"{part} images")
    targets = tf.constant(store.strengths if target == "strengths" else store.labels)
    if training:
        ds = _endless({"row": rows}, _stable_hash(seed, table, part)).map(lambda r: r["row"])
        ds = ds.skip(start_batch * config.batch_size)
    else:
        ds = tf.data.Dataset.from_tensor_slices(rows)
    ds = ds.batch(config.batch_size, drop_remainder=training)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.range(start_batch, FOREVER)))
    augment = ()
    if training:  # no flip when any strength of the images changes under it (tilt)
        augment = allowed_augmentations(meta, None, config.augment)
        for name in meta.get("strength_names", []):
            augment = allowed_augmentations(meta, name, augment)

    def materialize(batch_rows, index):
        image = store.images(batch_rows)
        if augment:
            image = augment_batch(image, tf.stack([tf.constant(seed, tf.int64), index]),
                                  augment, config)
        else:
            image = tf.cast(image, tf.float32) / 255.0
        return image, tf.gather(targets, batch_rows)

    return ds.map(materialize, num_parallel_calls=AUTOTUNE,
                  deterministic=True).prefetch(AUTOTUNE)


def data_hash(data_dir, meta=None):
    """SHA-256 over the names and bytes of every shard metadata.json lists (what a result was
    measured on; the same seed gives the same hash)."""
    meta = meta or schema.read_metadata(data_dir)
    entries = list(meta.get("images", {}).values()) + [
        entry for splits in meta.get("splits", {}).values() for entry in splits.values()]
    digest = hashlib.sha256()
    for name in sorted(n for entry in entries for n in entry.get("shards", [])):
        digest.update(name.encode("utf-8"))
        with tf.io.gfile.GFile(schema.join(data_dir, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def raise_for_unreadable(files, error):
    """Turns a data-loss error from deep inside tf.data into a one-line DataError naming the
    file; any other error is raised as it is (no reading of every shard first)."""
    if not isinstance(error, tf.errors.DataLossError):
        raise error
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"):
                pass
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError,
                tf.errors.InvalidArgumentError) as e:
            raise schema.DataError(corrupt_shard_message(path, e)) from None
    raise error
