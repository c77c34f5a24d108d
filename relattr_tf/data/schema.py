"""The data-directory schema of relattr_tf (version 2): the one place names and layout live.

Images are stored once, in image tables; pairs are small records that name two images by id.

    DIR/metadata.json
    DIR/images/<table>-00000-of-00001.tfrecord.gz            image records
    DIR/pairs/<attribute>/<split>-00000-of-00002.tfrecord.gz  pair records

Both record types are `tf.train.Example`s in gzip TFRecord shards:

* image record: `image` (encoded PNG or the source JPEG bytes), `id`, `strengths` (the image's
  attribute-strength vector, empty when unknown), `box` (the subject's bounding box
  [ymin, xmin, ymax, xmax] in [0, 1], empty when unknown), `labels` (other labels of the image,
  laid out as its table's `label_heads` in metadata.json; empty when it has none), `source`;
* pair record: `id_a`, `id_b`, `attribute`, `target` (1 = a shows more, 0 = b shows more,
  0.5 = about equal), `agreement`, `confidence`, `true_target` (exact truth; -1 when unknown),
  `source`, `split`. No image bytes.

`metadata.json` lists every image table (`images`: count, shards, bytes) and every pair split
(`splits[attribute][split]`: pairs, equal pairs, shards, and the image tables its ids refer to),
with the hashes of the sources and the commands that made and grew the directory. A table
whose images carry `labels` has `label_heads` in its entry: [{name, kind (softmax: one class
index column; sigmoid: one 0/1 column per class), size}], in column order. Shard paths
in it are relative to the data directory; readers use them, never a glob, so a stale file
cannot leak into a read.
"""
import json
import os
import zlib

import numpy as np

SCHEMA_VERSION = 2
# Feature names other modules read from parsed records.
ID, IMAGE, STRENGTHS, BOX, LABELS = "id", "image", "strengths", "box", "labels"
ID_A, ID_B, TARGET, TRUE_TARGET = "id_a", "id_b", "target", "true_target"
AGREEMENT, CONFIDENCE = "agreement", "confidence"
METADATA_FILE = "metadata.json"
SHARD_SUFFIX = ".tfrecord.gz"
IMAGES_DIR, PAIRS_DIR = "images", "pairs"
UNKNOWN = -1.0
EQUAL_TARGET = 0.5
SHARD_TARGET_BYTES = 128 << 20  # automatic shard count: about this much per shard
REBUILD_HINT = "python -m beam_jobs.make_synthetic --output_dir=DIR"


class DataError(ValueError):
    """A data directory problem, with a one-line message that names the file."""


# --------------------------------------------------------------------------- layout
def image_table_prefix(table):
    """Shard prefix of an image table, relative to the data directory."""
    return f"{IMAGES_DIR}/{table}"


def pair_split_prefix(attribute, split):
    """Shard prefix of one attribute's pair split, relative to the data directory."""
    return f"{PAIRS_DIR}/{attribute}/{split}"


def shard_name(prefix, index, count, tag=""):
    """`prefix[-tag]-SSSSS-of-NNNNN.tfrecord.gz`; a tag keeps a rewritten set apart from the
    one it replaces until metadata.json points at it."""
    tag = f"-{tag}" if tag else ""
    return f"{prefix}{tag}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shard_count(total_bytes, requested=0):
    """`requested` shards, or (0) one per SHARD_TARGET_BYTES of records, at least one."""
    if requested:
        return int(requested)
    return max(1, -(-int(total_bytes) // SHARD_TARGET_BYTES))


def shard_of(sort_key, count):
    """The shard a record goes to: a stable hash of its key (the same run after run)."""
    return zlib.crc32(sort_key.encode("utf-8")) % count


def join(data_dir, relative):
    return f"{data_dir.rstrip('/')}/{relative}"


# --------------------------------------------------------------------------- encoding
def _feature(kind, values):
    from tensorflow.core.example import feature_pb2
    if kind == "bytes":
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=values))
    return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))


def _text(s):
    return _feature("bytes", [str(s).encode("utf-8")])


def _scalar(x):
    return _feature("float", [UNKNOWN if x is None else float(x)])


def _vector(v):
    return _feature("float", [] if v is None else
                    [float(x) for x in np.asarray(v, np.float64).ravel()])


def _example(feature):
    from tensorflow.core.example import example_pb2, feature_pb2
    feature["schema_version"] = _feature("float", [SCHEMA_VERSION])
    example = example_pb2.Example(features=feature_pb2.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def encode_image(*, image, image_id, source, strengths=None, box=None, labels=None):
    """Serialized image record (bytes). `image` is encoded bytes (PNG, JPEG)."""
    if box is not None and len(box) != 4:
        raise ValueError(f"image {image_id}: box must be [ymin, xmin, ymax, xmax], got {box}")
    feature = {IMAGE: _feature("bytes", [image]), ID: _text(image_id),
               STRENGTHS: _vector(strengths), BOX: _vector(box), "source": _text(source)}
    if labels is not None:  # absent, not empty, so records without labels keep their bytes
        feature[LABELS] = _vector(labels)
    return _example(feature)


def encode_pair(*, id_a, id_b, attribute, target, source, split, agreement=None,
                confidence=None, true_target=None):
    """Serialized pair record (bytes): two image ids and the label, no image bytes."""
    target = float(target)
    if target not in (0.0, 0.5, 1.0):
        raise ValueError(f"pair {id_a},{id_b}: target must be 0, 0.5 or 1, got {target}")
    return _example({ID_A: _text(id_a), ID_B: _text(id_b), "attribute": _text(attribute),
                     TARGET: _scalar(target), AGREEMENT: _scalar(agreement),
                     CONFIDENCE: _scalar(confidence), TRUE_TARGET: _scalar(true_target),
                     "source": _text(source), "split": _text(split)})


def pair_sort_key(pair):
    """The order of pairs inside a shard (and which shard): ids, then the label."""
    return f"{pair['id_a']}|{pair['id_b']}|{pair['target']}"


# --------------------------------------------------------------------------- parsing
def image_feature_spec():
    import tensorflow as tf
    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        ID: tf.io.FixedLenFeature([], tf.string),
        STRENGTHS: tf.io.VarLenFeature(tf.float32),
        BOX: tf.io.VarLenFeature(tf.float32),
        LABELS: tf.io.VarLenFeature(tf.float32),
    }


def pair_feature_spec():
    import tensorflow as tf
    scalar = lambda: tf.io.FixedLenFeature([], tf.float32, default_value=UNKNOWN)
    return {
        ID_A: tf.io.FixedLenFeature([], tf.string),
        ID_B: tf.io.FixedLenFeature([], tf.string),
        TARGET: tf.io.FixedLenFeature([], tf.float32),
        AGREEMENT: scalar(),
        CONFIDENCE: scalar(),
        TRUE_TARGET: scalar(),
    }


def parse_pairs(serialized):
    """Parses a batch of pair records (graph mode) into a dict of tensors."""
    import tensorflow as tf
    return tf.io.parse_example(serialized, pair_feature_spec())


def parse_images(serialized):
    """Parses a batch of image records; strengths and boxes come back as ragged tensors."""
    import tensorflow as tf
    parsed = tf.io.parse_example(serialized, image_feature_spec())
    for key in (STRENGTHS, BOX, LABELS):
        parsed[key] = tf.RaggedTensor.from_sparse(parsed[key])
    return parsed


def decode_record(serialized):
    """Parses any record in Python (tests and tools): dict of str / float / numpy values."""
    from tensorflow.core.example import example_pb2
    example = example_pb2.Example.FromString(serialized)
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if key == IMAGE:
            out[key] = values[0]
        elif kind == "bytes_list":
            out[key] = values[0].decode("utf-8")
        elif key in (STRENGTHS, BOX, LABELS):
            out[key] = np.asarray(values, np.float32)
        else:
            out[key] = values[0] if values else None
    return out


# --------------------------------------------------------------------------- metadata
def metadata_path(data_dir):
    return os.path.join(data_dir, METADATA_FILE)


def read_metadata(data_dir, make_hint=REBUILD_HINT):
    """Reads and checks metadata.json; errors name the file and say how to make it."""
    import tensorflow as tf
    path = metadata_path(data_dir)
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no data directory here (metadata.json missing); make one "
                        f"with: {make_hint}")
    try:
        with tf.io.gfile.GFile(path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        command = meta.get("command") or make_hint
        raise DataError(f"{path}: schema version {version}, this relattr_tf reads version "
                        f"{SCHEMA_VERSION} (images stored once, pairs by id); rebuild it with: "
                        f"{command}")
    return meta


def pair_split(meta, data_dir, attribute, split):
    """The metadata entry of one pair split; DataError listing what exists."""
    splits = meta.get("splits", {})
    if attribute not in splits:
        raise DataError(f"{metadata_path(data_dir)}: unknown attribute {attribute!r}; known: "
                        f"{', '.join(sorted(splits))}")
    if split not in splits[attribute]:
        raise DataError(f"{metadata_path(data_dir)}: attribute {attribute!r} has no split "
                        f"{split!r}; known: {', '.join(sorted(splits[attribute]))}")
    return splits[attribute][split]


def image_table(meta, data_dir, table):
    """The metadata entry of one image table; DataError listing what exists."""
    tables = meta.get("images", {})
    if table not in tables:
        raise DataError(f"{metadata_path(data_dir)}: no image table {table!r}; known: "
                        f"{', '.join(sorted(tables))}")
    return tables[table]


def label_heads(meta, data_dir, table):
    """The label heads of an image table; DataError when its images carry no labels."""
    heads = image_table(meta, data_dir, table).get("label_heads")
    if not heads:
        raise DataError(f"{metadata_path(data_dir)}: image table {table!r} has no labels "
                        f"(label_heads); the pretraining task needs a labelled table such as "
                        f"make_synthetic's pretrain table (--pretrain_images)")
    return heads


def label_columns(heads):
    """Columns of the label vector each head reads: {name: (start, stop)}."""
    out, start = {}, 0
    for head in heads:
        width = 1 if head["kind"] == "softmax" else head["size"]
        out[head["name"]] = (start, start + width)
        start += width
    return out


def shard_paths(data_dir, entry, what):
    """Absolute shard paths of a table or split entry; DataError when it has none."""
    if not entry.get("shards"):
        raise DataError(f"{metadata_path(data_dir)}: {what} has no records")
    return [join(data_dir, name) for name in entry["shards"]]


def write_metadata(data_dir, meta):
    """Writes metadata.json atomically (a temporary file, then a rename), also on gs://."""
    import tensorflow as tf
    meta = dict(meta, schema_version=SCHEMA_VERSION)
    path = metadata_path(data_dir)
    tf.io.gfile.makedirs(data_dir)
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(json.dumps(meta, indent=2, sort_keys=True))
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
