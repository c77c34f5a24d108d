"""The version-2 schema (image records, pair records by id, metadata) and growing a directory."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from relattr_tf.data import schema, writer


def _pair(**overrides):
    fields = dict(id_a="a1", id_b="b2", attribute="open", target=0.5, source="zappos",
                  split="train", agreement=0.8, confidence=0.6, true_target=1.0)
    fields.update(overrides)
    return fields


def _image(**overrides):
    fields = dict(image=b"png-bytes", image_id="i7", source="synthetic",
                  strengths=[0.5, 0.25, -1.5], box=[0.1, 0.2, 0.6, 0.9])
    fields.update(overrides)
    return fields


def _read(data_dir, entry):
    paths = schema.shard_paths(data_dir, entry, "entry")
    return [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]


def _files(data_dir):
    paths = glob.glob(os.path.join(data_dir, "**", "*.tfrecord.gz"), recursive=True)
    return {os.path.relpath(p, data_dir): open(p, "rb").read() for p in paths}


def test_pair_round_trip_through_tf_parser_and_python():
    record = schema.encode_pair(**_pair())
    parsed = schema.parse_pairs(tf.constant([record, record]))
    assert parsed["id_a"].numpy().tolist() == [b"a1", b"a1"]
    assert parsed["id_b"].numpy()[0] == b"b2"
    np.testing.assert_allclose(parsed["target"].numpy(), [0.5, 0.5])
    assert parsed["agreement"].numpy()[0] == pytest.approx(0.8)
    assert parsed["true_target"].numpy()[0] == 1.0
    decoded = schema.decode_record(record)
    assert decoded["attribute"] == "open" and decoded["split"] == "train"
    assert decoded["source"] == "zappos" and decoded["confidence"] == pytest.approx(0.6)
    assert decoded["schema_version"] == schema.SCHEMA_VERSION
    assert "image_a" not in decoded and "image" not in decoded  # pairs hold no image bytes


def test_image_round_trip_through_tf_parser_and_python():
    record = schema.encode_image(**_image())
    parsed = schema.parse_images(tf.constant([record, schema.encode_image(
        **_image(image_id="j", strengths=[1.0], box=None))]))
    assert parsed["id"].numpy().tolist() == [b"i7", b"j"]
    assert parsed["image"].numpy()[0] == b"png-bytes"
    np.testing.assert_allclose(parsed["strengths"][0].numpy(), [0.5, 0.25, -1.5])
    np.testing.assert_allclose(parsed["box"][0].numpy(), [0.1, 0.2, 0.6, 0.9])
    assert parsed["box"][1].shape == (0,)  # ragged: an unknown box is empty
    decoded = schema.decode_record(record)
    assert decoded["image"] == b"png-bytes" and decoded["id"] == "i7"
    np.testing.assert_allclose(decoded["strengths"], [0.5, 0.25, -1.5])


def test_unknown_values_are_minus_one_and_empty():
    pair = schema.decode_record(schema.encode_pair(**_pair(agreement=None, confidence=None,
                                                           true_target=None)))
    assert pair["agreement"] == pair["confidence"] == pair["true_target"] == schema.UNKNOWN
    parsed = schema.parse_pairs(tf.constant([schema.encode_pair(**_pair(true_target=None))]))
    assert parsed["true_target"].numpy()[0] == schema.UNKNOWN
    image = schema.decode_record(schema.encode_image(**_image(strengths=None, box=None)))
    assert image["strengths"].size == 0 and image["box"].size == 0
    nan = schema.decode_record(schema.encode_image(**_image(strengths=[np.nan, 1.0])))
    assert np.isnan(nan["strengths"][0])  # an unreadable strength stays NaN


def test_encoding_is_deterministic_and_rejects_bad_values():
    assert schema.encode_pair(**_pair()) == schema.encode_pair(**_pair())
    reordered = dict(reversed(list(_pair().items())))
    assert schema.encode_pair(**reordered) == schema.encode_pair(**_pair())
    assert schema.encode_image(**_image()) == schema.encode_image(**_image())
    assert schema.encode_pair(**_pair(target=1)) != schema.encode_pair(**_pair(target=0))
    with pytest.raises(ValueError, match="target must be 0, 0.5 or 1"):
        schema.encode_pair(**_pair(target=2))
    with pytest.raises(ValueError, match=r"box must be \[ymin, xmin, ymax, xmax\]"):
        schema.encode_image(**_image(box=[0.1, 0.2]))


def test_layout_names_and_stable_shards():
    assert schema.shard_name(schema.pair_split_prefix("open", "train"), 1, 2) == \
        "pairs/open/train-00001-of-00002.tfrecord.gz"
    assert schema.shard_name(schema.image_table_prefix("all"), 0, 1, tag="ab12") == \
        "images/all-ab12-00000-of-00001.tfrecord.gz"
    assert schema.shard_count(0) == 1 and schema.shard_count(10, 3) == 3
    assert schema.shard_count(schema.SHARD_TARGET_BYTES + 1) == 2
    assert schema.shard_of("a|b|1.0", 7) == schema.shard_of("a|b|1.0", 7)
    assert schema.pair_sort_key(_pair()) == "a1|b2|0.5"


def test_metadata_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(schema.DataError, match="metadata.json missing.*make_synthetic"):
        schema.read_metadata(str(tmp_path))
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(schema.DataError, match="metadata.json: not valid JSON"):
        schema.read_metadata(str(tmp_path))
    (tmp_path / "metadata.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(schema.DataError, match=r"metadata.json: schema version 99"):
        schema.read_metadata(str(tmp_path))
    meta = {"splits": {"open": {"train": {"shards": []}, "test": {}}},
            "images": {"all": {"shards": []}}}
    with pytest.raises(schema.DataError, match="unknown attribute 'shiny'; known: open"):
        schema.pair_split(meta, str(tmp_path), "shiny", "train")
    with pytest.raises(schema.DataError, match="no split 'val'; known: test, train"):
        schema.pair_split(meta, str(tmp_path), "open", "val")
    with pytest.raises(schema.DataError, match="no image table 'train'; known: all"):
        schema.image_table(meta, str(tmp_path), "train")
    with pytest.raises(schema.DataError, match="metadata.json: open/train has no records"):
        schema.shard_paths(str(tmp_path), meta["splits"]["open"]["train"], "open/train")


def test_version_1_metadata_is_an_error_naming_the_rebuild_command(tmp_path):
    command = "python -m beam_jobs.convert_lfw10 --input_dir=LFW10 --output_dir=data/lfw10"
    (tmp_path / "metadata.json").write_text(json.dumps({"schema_version": 1,
                                                        "command": command}))
    with pytest.raises(schema.DataError) as error:
        schema.read_metadata(str(tmp_path))
    message = str(error.value)
    assert "schema version 1" in message and message.endswith(f"rebuild it with: {command}")
    assert "\n" not in message
    (tmp_path / "metadata.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(schema.DataError, match="rebuild it with: python -m "
                                               "beam_jobs.make_synthetic --output_dir=DIR"):
        schema.read_metadata(str(tmp_path))


def test_write_metadata_is_atomic_and_adds_the_version(tmp_path):
    out = str(tmp_path / "new")
    schema.write_metadata(out, {"dataset": "x", "images": {}, "splits": {}})
    assert os.listdir(out) == ["metadata.json"]  # no temporary file left
    assert schema.read_metadata(out)["schema_version"] == schema.SCHEMA_VERSION


def test_add_to_data_dir_replaces_one_split_and_leaves_the_rest(tmp_path, tiny_data_dir):
    data_dir = str(tmp_path / "grown")
    shutil.copytree(tiny_data_dir, data_dir)
    before, files_before = schema.read_metadata(data_dir), _files(data_dir)
    train_ids = sorted(schema.decode_record(r)["id"]
                       for r in _read(data_dir, before["images"]["train"]))
    pairs = [_pair(id_a=train_ids[k], id_b=train_ids[k + 1], attribute="brightness",
                   split="train", target=1.0) for k in range(3)]
    meta = writer.add_to_data_dir(data_dir, pairs=pairs, image_tables=["train"],
                                  command="relabel brightness/train")
    entry = meta["splits"]["brightness"]["train"]
    assert entry["pairs"] == 3 and entry["image_tables"] == ["train"]
    assert sorted(schema.decode_record(r)["id_a"] for r in _read(data_dir, entry)) == \
        train_ids[:3]
    old = before["splits"]["brightness"]["train"]["shards"]
    assert not set(old) & set(entry["shards"])
    assert not any(os.path.exists(os.path.join(data_dir, name)) for name in old)  # stale: gone
    for attribute, splits in before["splits"].items():  # every other split untouched
        for split, other in splits.items():
            if (attribute, split) != ("brightness", "train"):
                assert meta["splits"][attribute][split] == other
                assert all(_files(data_dir)[n] == files_before[n] for n in other["shards"])
    assert meta["images"] == before["images"]
    assert schema.read_metadata(data_dir) == meta and meta["history"][-1]["command"] == \
        "relabel brightness/train"
    listed = {n for e in meta["images"].values() for n in e["shards"]} | {
        n for s in meta["splits"].values() for e in s.values() for n in e["shards"]}
    assert set(_files(data_dir)) == listed  # no file without a metadata entry


def test_add_to_data_dir_adds_a_table_and_a_new_attribute(tmp_path, tiny_data_dir):
    data_dir = str(tmp_path / "grown")
    shutil.copytree(tiny_data_dir, data_dir)
    images = [_image(image_id=f"gen-{k}", strengths=[float(k)] * 8) for k in range(4)]
    pairs = [_pair(id_a="gen-0", id_b="gen-1", attribute="shininess", split="round-01",
                   target=0.0)]
    meta = writer.add_to_data_dir(data_dir, table="round-01", images=images, pairs=pairs,
                                  command="grow", num_shards=2)
    assert meta["images"]["round-01"]["count"] == 4 and len(meta["images"]["round-01"]
                                                            ["shards"]) == 2
    assert meta["splits"]["shininess"]["round-01"]["image_tables"] == ["round-01"]
    assert "shininess" in meta["attributes"]
    ids = sorted(schema.decode_record(r)["id"] for r in _read(data_dir, meta["images"]
                                                               ["round-01"]))
    assert ids == [f"gen-{k}" for k in range(4)]
    files = _files(data_dir)
    again = writer.add_to_data_dir(data_dir, table="round-01", images=images, pairs=pairs,
                                   command="grow again", num_shards=2)
    assert again["images"]["round-01"] == meta["images"]["round-01"]  # same content, same names
    assert _files(data_dir) == files and len(again["history"]) == 2
    with pytest.raises(schema.DataError, match="no image table 'nope'"):
        writer.add_to_data_dir(data_dir, pairs=pairs, image_tables=["nope"])
