"""tf.data input pipeline over a data directory's pair shards.

    ds = make_dataset(data_dir, "open", "train", batch_size=24, image_size=64, training=True)
    for (image_a, image_b), target in ds: ...

Images come out as float32 RGB in [0, 1], (batch, size, size, 3); the models normalise them.
With `with_info=True` each element has a third part, a dict with `true_target` (-1 unknown),
`id_a` and `id_b`, which the evaluator uses; targets of 0.5 mark equal pairs.
"""
import dataclasses
import logging

import tensorflow as tf

from relattr_tf.data import schema

AUTOTUNE = tf.data.AUTOTUNE
AUGMENTATIONS = ("flip", "translate", "crop")


@dataclasses.dataclass(frozen=True)
class InputConfig:
    batch_size: int = 24
    image_size: int = 64
    augment: tuple = ("flip", "translate")  # used when training
    swap: bool = True  # add (j, i) with 1 - t for every (i, j) when training
    shuffle_buffer: int = 4096
    cache: bool = True  # keep the encoded records in memory after the first epoch
    skip_corrupt: bool = False  # count-and-skip unreadable records instead of failing
    translate_pixels: int = 4  # at 64 px; scaled with image_size
    crop_min_fraction: float = 0.85


def shard_files(data_dir, attribute, split, meta=None):
    """The sorted shard paths of one attribute and split; DataError if there are none."""
    meta = meta or schema.read_metadata(data_dir)
    schema.check_attribute_split(meta, data_dir, attribute, split)
    prefix = schema.shard_prefix(data_dir, attribute, split)
    files = sorted(tf.io.gfile.glob(schema.shard_pattern(prefix)))
    if not files:
        raise schema.DataError(f"{prefix}: metadata.json lists this split but no shard files "
                               f"match {schema.shard_pattern(prefix)}")
    return files


def split_size(data_dir, attribute, split, meta=None):
    """Number of pairs in a split, as recorded in metadata.json."""
    meta = meta or schema.read_metadata(data_dir)
    return int(schema.check_attribute_split(meta, data_dir, attribute, split)["pairs"])


def find_unreadable_shards(files):
    """[(file, error)] for every shard that cannot be read to its end (names the bad file)."""
    bad = []
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"):
                pass
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError,
                tf.errors.InvalidArgumentError) as e:
            bad.append((path, e.message.splitlines()[0] if e.message else type(e).__name__))
    return bad


def raise_for_unreadable(files, error):
    """Turns a read error from deep inside tf.data into a one-line DataError naming the file."""
    bad = find_unreadable_shards(files)
    if bad:
        path, message = bad[0]
        raise schema.DataError(f"{path}: corrupt or truncated shard ({message}); regenerate it, "
                               f"or pass --skip_corrupt to count and skip bad records") from None
    raise error


def decode_image(encoded, image_size):
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)
    height_width = tf.shape(image)[:2]
    # Resizing costs even at the same size; shards are usually written at the training size.
    return tf.cond(
        tf.reduce_all(height_width == image_size),
        lambda: tf.ensure_shape(image, (image_size, image_size, 3)),
        lambda: tf.clip_by_value(
            tf.image.resize(image, (image_size, image_size), antialias=True), 0.0, 1.0))


def augment_image(image, seeds, augment, config):
    """Random per-image augmentation; `seeds` is an int64 (3, 2) tensor of stateless seeds."""
    size = config.image_size
    if "crop" in augment:
        fraction = tf.random.stateless_uniform([], seeds[0], config.crop_min_fraction, 1.0)
        crop = tf.cast(tf.round(fraction * size), tf.int32)
        image = tf.image.stateless_random_crop(image, [crop, crop, 3], seeds[0])
        image = tf.image.resize(image, (size, size), antialias=True)
    if "translate" in augment:
        pad = max(1, round(config.translate_pixels * size / 64))
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, [size, size, 3], seeds[1])
    if "flip" in augment:
        image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    return image


def allowed_augmentations(meta, attribute, requested):
    """Drops a flip for attributes that a mirror image changes (the benchmark's tilt)."""
    unknown = sorted(set(requested) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentation(s) {', '.join(unknown)}; known: "
                         f"{', '.join(AUGMENTATIONS)}")
    info = meta.get("attribute_info", {}).get(attribute, {})
    if "flip" in requested and not info.get("flip_invariant", True):
        logging.info("attribute %s is not flip invariant: no flip augmentation", attribute)
        requested = tuple(a for a in requested if a != "flip")
    return tuple(requested)


def _swap(images_a, images_b, target, info):
    """One pair -> the pair and its swapped copy (j, i) with target 1 - t."""
    true = info["true_target"]
    swapped_info = {"id_a": tf.stack([info["id_a"], info["id_b"]]),
                    "id_b": tf.stack([info["id_b"], info["id_a"]]),
                    "true_target": tf.stack([true, tf.where(true < 0, true, 1.0 - true)])}
    return (tf.stack([images_a, images_b]), tf.stack([images_b, images_a]),
            tf.stack([target, 1.0 - target]), swapped_info)


def make_dataset(data_dir, attribute, split, config=InputConfig(), *, training, seed=None,
                 with_info=False, repeat=False, meta=None):
    """Batched ((image_a, image_b), target[, info]) dataset of one attribute and split."""
    meta = meta or schema.read_metadata(data_dir)
    files = shard_files(data_dir, attribute, split, meta)
    augment = allowed_augmentations(meta, attribute, config.augment) if training else ()

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                       cycle_length=min(len(files), 8), num_parallel_calls=AUTOTUNE,
                       deterministic=True)
    ds = ds.map(schema.parse_pair, num_parallel_calls=AUTOTUNE)
    if config.skip_corrupt:
        ds = ds.ignore_errors(log_warning=True)
    if config.cache and training:
        ds = ds.cache()
    if repeat:
        ds = ds.repeat()
    if training:
        ds = ds.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def decode(record):
        info = {"true_target": record[schema.TRUE_TARGET], "id_a": record[schema.ID_A],
                "id_b": record[schema.ID_B]}
        return (decode_image(record[schema.IMAGE_A], config.image_size),
                decode_image(record[schema.IMAGE_B], config.image_size), record[schema.TARGET],
                info)

    ds = ds.map(decode, num_parallel_calls=AUTOTUNE)
    if config.skip_corrupt:
        ds = ds.ignore_errors(log_warning=True)
    if training and config.swap:
        ds = ds.map(_swap, num_parallel_calls=AUTOTUNE).unbatch()
        ds = ds.shuffle(4 * config.batch_size, seed=seed)  # part a pair from its swapped copy
    if augment:
        # Stateless seeds per pair: reproducible with a fixed seed, parallel-safe.
        seeds = tf.data.Dataset.random(seed=seed).batch(12).map(
            lambda s: tf.reshape(s, (2, 3, 2)))
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: (augment_image(pair[0], s[0], augment, config),
                             augment_image(pair[1], s[1], augment, config), pair[2], pair[3]),
            num_parallel_calls=AUTOTUNE)
    if with_info:
        ds = ds.map(lambda a, b, t, info: ((a, b), t, info))
    else:
        ds = ds.map(lambda a, b, t, info: ((a, b), t))
    ds = ds.batch(config.batch_size, drop_remainder=training, num_parallel_calls=AUTOTUNE)
    if not training and not repeat and not config.skip_corrupt:
        # Known length: Keras then ends evaluation without probing past the end, and a shard
        # set that disagrees with metadata.json fails loudly.
        pairs = split_size(data_dir, attribute, split, meta)
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-pairs // config.batch_size)))
    return ds.prefetch(AUTOTUNE)


def make_image_dataset(data_dir, split="generator", *, batch_size, image_size):
    """Batched (image, strengths) of the single-image records (the generator's training set)."""
    schema.read_metadata(data_dir)
    files = sorted(tf.io.gfile.glob(schema.shard_pattern(schema.image_shard_prefix(data_dir,
                                                                                   split))))
    if not files:
        raise schema.DataError(f"{schema.image_shard_prefix(data_dir, split)}: no image shards")
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=AUTOTUNE)
    ds = ds.map(schema.parse_image, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda r: (decode_image(r[schema.IMAGE], image_size), r[schema.STRENGTHS]),
                num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
