import json

import numpy as np
import pytest
import tensorflow as tf

from relattr_tf.data import schema


def _pair(**overrides):
    fields = dict(image_a=b"png-a", image_b=b"png-b", id_a="a1", id_b="b2", attribute="open",
                  target=0.5, source="zappos", split="train", agreement=0.8, confidence=0.6,
                  strengths_a=[1.0, 2.0], strengths_b=[3.0, 4.0], true_target=1.0)
    fields.update(overrides)
    return fields


def test_pair_round_trip_through_tf_parser():
    parsed = schema.parse_pair(tf.constant(schema.encode_pair(**_pair())))
    assert parsed["image_a"].numpy() == b"png-a" and parsed["image_b"].numpy() == b"png-b"
    assert parsed["id_a"].numpy() == b"a1" and parsed["attribute"].numpy() == b"open"
    assert parsed["target"].numpy() == pytest.approx(0.5)
    assert parsed["agreement"].numpy() == pytest.approx(0.8)
    np.testing.assert_allclose(parsed["strengths_b"].numpy(), [3.0, 4.0])
    assert parsed["schema_version"].numpy() == schema.SCHEMA_VERSION


def test_unknown_fields_are_stored_as_minus_one_and_empty():
    record = schema.encode_pair(**_pair(agreement=None, confidence=None, strengths_a=None,
                                        strengths_b=None, true_target=None))
    parsed = schema.decode_pair(record)
    assert parsed["agreement"] == schema.UNKNOWN and parsed["true_target"] == schema.UNKNOWN
    assert parsed["strengths_a"].size == 0
    tf_parsed = schema.parse_pair(tf.constant(record))
    assert tf_parsed["strengths_a"].shape == (0,)


def test_encoding_is_deterministic_and_rejects_bad_targets():
    assert schema.encode_pair(**_pair()) == schema.encode_pair(**_pair())
    with pytest.raises(ValueError, match="target must be 0, 0.5 or 1"):
        schema.encode_pair(**_pair(target=2))


def test_image_record_round_trip():
    record = schema.encode_image(image=b"x", image_id="i", strengths=[0.5, 0.25], source="s",
                                 split="generator")
    parsed = schema.parse_image(tf.constant(record))
    np.testing.assert_allclose(parsed["strengths"].numpy(), [0.5, 0.25])
    assert parsed["id"].numpy() == b"i"


def test_metadata_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(schema.DataError, match="metadata.json missing.*make_synthetic"):
        schema.read_metadata(str(tmp_path))
    (tmp_path / "metadata.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(schema.DataError, match=r"metadata.json: schema version 99"):
        schema.read_metadata(str(tmp_path))
    meta = {"splits": {"open": {"train": {}, "test": {}}}}
    with pytest.raises(schema.DataError, match="unknown attribute 'shiny'; known: open"):
        schema.check_attribute_split(meta, str(tmp_path), "shiny", "train")
    with pytest.raises(schema.DataError, match="no split 'val'; known: test, train"):
        schema.check_attribute_split(meta, str(tmp_path), "open", "val")
