"""Images for the readers: decoding, the in-memory ImageStore, and batch augmentation.

An `ImageStore` holds the images of some image tables, loaded once: decoded at the training
size and kept in memory when they fit a budget, kept encoded and decoded on use otherwise. Ids
map to rows with a `tf.lookup` table; a batch's images are a `tf.gather`. Augmentation works on
whole batches: translation (whole pixels, mirrored borders) and flips are index gathers.
"""
import logging

import numpy as np
import tensorflow as tf

from relattr_tf.data import schema

AUTOTUNE = tf.data.AUTOTUNE
AUGMENTATIONS = ("flip", "translate", "crop")


def read_records(paths):
    """Records of gzip TFRecord shards, in order."""
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    return files.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                            cycle_length=min(len(paths), 8), num_parallel_calls=AUTOTUNE,
                            deterministic=True)


def first_line(error):
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.strip().splitlines()[0]


# --------------------------------------------------------------------------- augmentation
def corrupt_shard_message(path, error):
    return (f"{path}: corrupt or truncated shard ({first_line(error)}); regenerate it, or "
            f"pass --skip_corrupt to count and skip bad records")


def resize_to_uint8(image, image_size, channels=3):
    """uint8 (H, W, C) -> uint8 (size, size, C), resized (antialiased bilinear, the aspect
    ratio not kept) only when needed: how every image reaches a model."""
    image = tf.convert_to_tensor(image, tf.uint8)
    return tf.cond(
        tf.reduce_all(tf.shape(image)[:2] == image_size),
        lambda: tf.ensure_shape(image, (image_size, image_size, channels)),
        lambda: tf.cast(tf.round(tf.clip_by_value(tf.image.resize(
            tf.cast(image, tf.float32), (image_size, image_size), antialias=True), 0, 255)),
            tf.uint8))


def decode_to_uint8(encoded, image_size, channels=3):
    """Encoded PNG/JPEG -> uint8 (size, size, channels), resized as `resize_to_uint8`;
    channels=4 keeps a PNG's alpha (a table's subject masks, `mask: alpha`)."""
    return resize_to_uint8(tf.io.decode_image(encoded, channels=channels,
                                              expand_animations=False), image_size, channels)


class ImageStore:
    """The images of some image tables, loaded once, addressed by row.

    `rows(ids)` maps ids to rows (-1 when absent), `images(rows)` gives uint8 images of the
    training size, `strengths` / `boxes` / `labels` / `ids` are numpy arrays over the rows.
    """

    def __init__(self, data_dir, tables, image_size, memory_mb=2048, meta=None,
                 skip_corrupt=False, channels=3):
        meta = meta or schema.read_metadata(data_dir)
        self.tables, self.image_size, self.channels = list(tables), image_size, channels
        ids, encoded, strengths, boxes, labels = [], [], [], [], []
        for table in self.tables:
            entry = schema.image_table(meta, data_dir, table)
            for path in schema.shard_paths(data_dir, entry, f"image table {table!r}"):
                records = read_records([path])
                if skip_corrupt:
                    records = records.ignore_errors(log_warning=True)
                try:
                    for batch in records.batch(512).map(schema.parse_images):
                        ids += batch[schema.ID].numpy().tolist()
                        encoded += batch[schema.IMAGE].numpy().tolist()
                        strengths += batch[schema.STRENGTHS].to_list()
                        boxes += batch[schema.BOX].to_list()
                        labels += batch[schema.LABELS].to_list()
                except tf.errors.OpError as e:
                    raise schema.DataError(corrupt_shard_message(path, e)) from None
        self.ids = np.asarray(ids, dtype=object)
        unique, counts = np.unique(self.ids, return_counts=True)
        if len(unique) < len(ids):
            raise schema.DataError(f"image tables {', '.join(self.tables)}: image id "
                                   f"{unique[counts > 1][0].decode()} appears "
                                   f"{counts.max()} times; ids must be unique")
        self.strengths = _dense(strengths, np.nan)
        self.boxes = _dense(boxes, -1.0, width=4)
        self.labels = _dense(labels, np.nan)
        self.decoded = len(ids) * image_size * image_size * channels <= memory_mb * 2 ** 20
        readable = np.ones(len(ids), bool)
        if self.decoded:
            pixels, readable = self._decode_all(encoded, skip_corrupt)
            self._pixels = tf.constant(pixels)
        else:
            logging.info("%d images at %d px exceed --image_memory_mb=%d: decoded on use",
                         len(ids), image_size, memory_mb)
            self._pixels = tf.constant(encoded, tf.string)
        # Undecodable images (skipped with skip_corrupt) get no row: their pairs are dropped.
        keys = [i for i, ok in zip(ids, readable) if ok] or [b"\0none"]
        rows = np.flatnonzero(readable) if readable.any() else np.zeros(1, np.int64)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                                tf.constant(rows, tf.int64)),
            default_value=-1)
        self.count = len(ids)

    def _decode_all(self, encoded, skip_corrupt):
        """(uint8 pixels of every image, which ones decoded)."""
        size = self.image_size
        out = np.zeros((len(encoded), size, size, self.channels), np.uint8)
        readable = np.zeros(len(encoded), bool)
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(encoded or [b""], tf.string))
        ds = ds.take(len(encoded)).enumerate()
        ds = ds.map(lambda i, e: (i, decode_to_uint8(e, size, self.channels)),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
        if skip_corrupt:
            ds = ds.ignore_errors(log_warning=True)
        try:
            for index, pixels in ds.batch(256):
                out[index.numpy()] = pixels.numpy()
                readable[index.numpy()] = True
        except tf.errors.InvalidArgumentError as e:
            raise schema.DataError(f"image tables {', '.join(self.tables)}: an image does not "
                                   f"decode ({first_line(e)}); pass --skip_corrupt to skip "
                                   f"it") from None
        if not readable.all():
            logging.warning("image tables %s: %d undecodable images skipped (their pairs are "
                            "dropped)", ", ".join(self.tables), int((~readable).sum()))
        return out, readable

    def rows(self, ids):
        return self._table.lookup(ids)

    def images(self, rows):
        """uint8 images (len(rows), size, size, channels) of rows (graph-safe)."""
        if self.decoded:
            return tf.gather(self._pixels, rows)
        size, channels = self.image_size, self.channels
        return tf.map_fn(lambda e: decode_to_uint8(e, size, channels),
                         tf.gather(self._pixels, rows),
                         fn_output_signature=tf.TensorSpec((size, size, channels), tf.uint8))


def _dense(vectors, fill, width=None):
    width = width or max((len(v) for v in vectors), default=0)
    out = np.full((len(vectors), width), fill, np.float32)
    for row, v in enumerate(vectors):
        out[row, :len(v)] = v
    return out


def _reflect(index, size):
    """Index into [0, size) of a position past an edge, mirrored as tf.pad's REFLECT mode."""
    index = tf.abs(index)
    return tf.where(index > size - 1, 2 * (size - 1) - index, index)


def augment_batch(images, seed, augment, config):
    """Random per-image augmentation of a batch (uint8 or float); `seed` is a stateless (2,)
    seed. Returns float32 in [0, 1].

    Translation (whole pixels, borders mirrored) and flips are index gathers, so they cost
    about as much as copying the batch; a crop resizes, so it needs a float image first.
    """
    size = config.image_size
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    if images.dtype == tf.uint8:
        scale = 1.0 / 255.0
    else:
        scale = 1.0
    if "crop" in augment:
        images, scale = tf.cast(images, tf.float32) * scale, 1.0
        fraction = tf.random.stateless_uniform([batch], seeds[0], config.crop_min_fraction, 1.0)
        offset = tf.random.stateless_uniform([batch, 2], seeds[1]) * (1.0 - fraction)[:, None]
        boxes = tf.concat([offset, offset + fraction[:, None]], axis=1)
        images = tf.image.crop_and_resize(images, boxes, tf.range(batch), (size, size))
    rows = cols = tf.tile(tf.range(size)[None], [batch, 1])
    if "translate" in augment:
        pad = max(1, round(config.translate_pixels * size / 64))
        shift = tf.random.stateless_uniform([batch, 2], seeds[2], -pad, pad + 1, tf.int32)
        rows, cols = _reflect(rows + shift[:, :1], size), _reflect(cols + shift[:, 1:], size)
    if "flip" in augment:
        flip = tf.random.stateless_uniform([batch, 1], seeds[3]) < 0.5
        cols = tf.where(flip, tf.reverse(cols, axis=[1]), cols)
    if "translate" in augment or "flip" in augment:
        images = tf.gather(images, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    return tf.cast(images, tf.float32) * scale


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


# --------------------------------------------------------------------------- pairs
