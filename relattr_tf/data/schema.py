"""The TFRecord schema of relattr_tf: the one place feature names, dtypes and layout live.

Two record types, both `tf.train.Example`, in gzip TFRecord shards:

* pair records, one per labelled pair (i, j) of one attribute;
* image records, one per image with its attribute-strength vector (training data for the
  conditional generator, which sees images and strengths but no pairs).

Targets follow one convention everywhere: 1 = the first image (a) shows more, 0 = the second
(b) shows more, 0.5 = about equal. Unknown scalars are stored as -1; unknown vectors are empty.

A data directory holds `metadata.json` plus shards, one set per attribute and split:
`<dir>/<attribute>/<split>-00000-of-00004.tfrecord.gz`, and image shards under
`<dir>/images/<split>-*.tfrecord.gz`.
"""
import json
import os

import numpy as np

SCHEMA_VERSION = 1
# Feature names other modules read from parsed records.
IMAGE_A, IMAGE_B, ID_A, ID_B, TARGET, TRUE_TARGET = (
    "image_a", "image_b", "id_a", "id_b", "target", "true_target")
IMAGE, STRENGTHS = "image", "strengths"
METADATA_FILE = "metadata.json"
SHARD_SUFFIX = ".tfrecord.gz"
IMAGES_DIR = "images"
UNKNOWN = -1.0
EQUAL_TARGET = 0.5


def shard_prefix(data_dir, attribute, split):
    """Path prefix that WriteToTFRecord completes with `-SSSSS-of-NNNNN.tfrecord.gz`."""
    return f"{data_dir.rstrip('/')}/{attribute}/{split}"


def image_shard_prefix(data_dir, split):
    return f"{data_dir.rstrip('/')}/{IMAGES_DIR}/{split}"


def shard_pattern(prefix):
    return f"{prefix}-*-of-*{SHARD_SUFFIX}"


# --------------------------------------------------------------------------- encoding
def _bytes(values):
    from tensorflow.core.example import feature_pb2
    return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=values))


def _floats(values):
    from tensorflow.core.example import feature_pb2
    return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))


def _text(s):
    return _bytes([s.encode("utf-8")])


def _optional(x):
    return UNKNOWN if x is None else float(x)


def _vector(v):
    return [] if v is None else [float(x) for x in np.asarray(v, np.float64).ravel()]


def encode_pair(*, image_a, image_b, id_a, id_b, attribute, target, source, split,
                agreement=None, confidence=None, strengths_a=None, strengths_b=None,
                true_target=None):
    """Serialized pair Example (bytes). Images are encoded bytes (PNG, JPEG)."""
    from tensorflow.core.example import example_pb2, feature_pb2
    target = float(target)
    if target not in (0.0, 0.5, 1.0):
        raise ValueError(f"pair {id_a},{id_b}: target must be 0, 0.5 or 1, got {target}")
    feature = {
        "schema_version": _floats([SCHEMA_VERSION]),
        IMAGE_A: _bytes([image_a]),
        IMAGE_B: _bytes([image_b]),
        ID_A: _text(id_a),
        ID_B: _text(id_b),
        "attribute": _text(attribute),
        TARGET: _floats([target]),
        "agreement": _floats([_optional(agreement)]),
        "confidence": _floats([_optional(confidence)]),
        "strengths_a": _floats(_vector(strengths_a)),
        "strengths_b": _floats(_vector(strengths_b)),
        TRUE_TARGET: _floats([_optional(true_target)]),
        "source": _text(source),
        "split": _text(split),
    }
    example = example_pb2.Example(features=feature_pb2.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def encode_image(*, image, image_id, strengths, source, split):
    """Serialized single-image Example with its attribute-strength vector."""
    from tensorflow.core.example import example_pb2, feature_pb2
    feature = {
        "schema_version": _floats([SCHEMA_VERSION]),
        IMAGE: _bytes([image]),
        "id": _text(image_id),
        STRENGTHS: _floats(_vector(strengths)),
        "source": _text(source),
        "split": _text(split),
    }
    example = example_pb2.Example(features=feature_pb2.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


# --------------------------------------------------------------------------- parsing
def pair_feature_spec():
    import tensorflow as tf
    scalar_f = lambda: tf.io.FixedLenFeature([], tf.float32, default_value=UNKNOWN)
    scalar_s = lambda: tf.io.FixedLenFeature([], tf.string, default_value="")
    return {
        "schema_version": tf.io.FixedLenFeature([], tf.float32),
        IMAGE_A: tf.io.FixedLenFeature([], tf.string),
        IMAGE_B: tf.io.FixedLenFeature([], tf.string),
        ID_A: scalar_s(),
        ID_B: scalar_s(),
        "attribute": scalar_s(),
        TARGET: tf.io.FixedLenFeature([], tf.float32),
        "agreement": scalar_f(),
        "confidence": scalar_f(),
        "strengths_a": tf.io.VarLenFeature(tf.float32),
        "strengths_b": tf.io.VarLenFeature(tf.float32),
        TRUE_TARGET: scalar_f(),
        "source": scalar_s(),
        "split": scalar_s(),
    }


def image_feature_spec():
    import tensorflow as tf
    return {
        "schema_version": tf.io.FixedLenFeature([], tf.float32),
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
        STRENGTHS: tf.io.VarLenFeature(tf.float32),
        "source": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "split": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def parse_pair(serialized):
    """Parses one pair record (graph mode) into a dict of tensors; vectors are dense."""
    import tensorflow as tf
    parsed = tf.io.parse_single_example(serialized, pair_feature_spec())
    for key in ("strengths_a", "strengths_b"):
        parsed[key] = tf.sparse.to_dense(parsed[key])
    return parsed


def parse_image(serialized):
    import tensorflow as tf
    parsed = tf.io.parse_single_example(serialized, image_feature_spec())
    parsed[STRENGTHS] = tf.sparse.to_dense(parsed[STRENGTHS])
    return parsed


def decode_pair(serialized):
    """Parses a pair record in Python (eager, tests and tools): dict of numpy/str values."""
    from tensorflow.core.example import example_pb2
    example = example_pb2.Example.FromString(serialized)
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value)
        if kind == "bytes_list":
            out[key] = values[0] if key.startswith("image") else values[0].decode("utf-8")
        elif key.startswith("strengths"):
            out[key] = np.asarray(values, np.float32)
        else:
            out[key] = values[0]
    return out


# --------------------------------------------------------------------------- metadata
class DataError(ValueError):
    """A data directory problem, with a one-line message that names the file."""


def metadata_path(data_dir):
    return os.path.join(data_dir, METADATA_FILE)


def read_metadata(data_dir, make_hint="python -m beam_jobs.make_synthetic --output_dir=DIR"):
    """Reads and checks metadata.json; errors name the file and say how to make it."""
    import tensorflow as tf
    path = metadata_path(data_dir)
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no data directory here (metadata.json missing); make one with: "
                        f"{make_hint}")
    try:
        with tf.io.gfile.GFile(path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(f"{path}: schema version {version}, this relattr_tf reads version "
                        f"{SCHEMA_VERSION}; regenerate the data directory with this version")
    return meta


def check_attribute_split(meta, data_dir, attribute, split):
    """Raises DataError listing the known attributes / splits."""
    splits = meta.get("splits", {})
    if attribute not in splits:
        raise DataError(f"{metadata_path(data_dir)}: unknown attribute {attribute!r}; known: "
                        f"{', '.join(sorted(splits))}")
    if split not in splits[attribute]:
        raise DataError(f"{metadata_path(data_dir)}: attribute {attribute!r} has no split {split!r}; "
                        f"known: {', '.join(sorted(splits[attribute]))}")
    return splits[attribute][split]


def write_metadata(data_dir, meta):
    """Writes metadata.json through Beam's FileSystems (works for gs:// too)."""
    from apache_beam.io.filesystems import FileSystems
    meta = dict(meta, schema_version=SCHEMA_VERSION)
    with FileSystems.create(metadata_path(data_dir)) as f:
        f.write(json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
