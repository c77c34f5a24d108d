"""The benchmark's Beam job: transforms under TestPipeline, determinism, metadata, reruns."""
import glob
import json
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import make_synthetic, transforms
from relattr_tf.data import schema
from tests.conftest import make_tiny


def _records(data_dir):
    out = []
    for path in sorted(glob.glob(os.path.join(data_dir, "*", "*.tfrecord.gz"))):
        rel = os.path.relpath(path, data_dir).split(os.sep)[0]
        out += [(rel, r.numpy()) for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    return out


def test_crowd_label_drops_illegible_pairs_and_labels_the_rest():
    strengths = np.zeros(8)
    unreadable = np.full(8, np.nan)
    brighter = strengths.copy()
    brighter[0] = 0.5
    items = [dict(attribute="brightness", split="train", id_a="x", id_b="y",
                  strengths_a=brighter, strengths_b=strengths, column=0),
             dict(attribute="tilt", split="train", id_a="x", id_b="z",
                  strengths_a=strengths, strengths_b=unreadable, column=7)]
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(items) | beam.ParDo(make_synthetic.CrowdLabel(seed=0))
        assert_that(out | beam.Map(lambda r: (r["id_b"], r["target"], r["true_target"])),
                    equal_to([("y", 1.0, 1.0)]))


def test_attach_images_joins_both_sides_and_counts_missing_images():
    pairs = [dict(id_a="1", id_b="2", tag="kept"), dict(id_a="1", id_b="9", tag="dropped")]
    images = [("1", b"one"), ("2", b"two")]
    with test_pipeline.TestPipeline() as p:
        joined = (p | "Pairs" >> beam.Create(pairs),
                  p | "Images" >> beam.Create(images)) | transforms.AttachImages()
        assert_that(joined | beam.Map(lambda r: (r["tag"], r["image_a"], r["image_b"])),
                    equal_to([("kept", b"one", b"two")]))
    assert transforms.counters_of(p.result)["pairs_missing_image"] == 1


def test_make_pairs_orders_members_and_gives_both_pair_sets():
    members = [(f"id{i:02d}", np.array([i / 100.0] * 8)) for i in range(40)]
    with test_pipeline.TestPipeline() as p:
        out = (p | beam.Create([("train", members[::-1])])
               | beam.ParDo(make_synthetic.MakePairs(0, ["brightness"], {"train": 5}))
               | beam.Map(lambda r: r["split"]) | beam.combiners.Count.PerElement())
        assert_that(out, equal_to([("train", 5), ("train_fine", 5)]))


def test_job_writes_metadata_matching_its_shards(tiny_data_dir):
    meta = schema.read_metadata(tiny_data_dir)
    assert meta["dataset"] == "synthetic" and meta["image_size"] == [32, 32]
    assert set(meta["splits"]) == {"brightness", "tilt"}
    assert set(meta["splits"]["brightness"]) == {"train", "train_fine", "test", "test_fine"}
    assert meta["images"]["generator"] > 0
    assert meta["attribute_info"]["tilt"]["flip_invariant"] is False
    records = _records(tiny_data_dir)
    for attribute, splits in meta["splits"].items():
        for split, summary in splits.items():
            parsed = [schema.decode_pair(r) for a, r in records if a == attribute]
            parsed = [r for r in parsed if r["split"] == split]
            assert len(parsed) == summary["pairs"] > 0
            assert sum(r["target"] == 0.5 for r in parsed) == summary["equal_pairs"]
            assert all(r["true_target"] in (0.0, 1.0) for r in parsed)
            assert len(summary["shards"]) == 2
    train_ids = {r["id_a"] for a, raw in records if a != "images"
                 for r in [schema.decode_pair(raw)] if r["split"].startswith("train")}
    test_ids = {r["id_a"] for a, raw in records if a != "images"
                for r in [schema.decode_pair(raw)] if r["split"].startswith("test")}
    assert train_ids and test_ids and not train_ids & test_ids


def test_same_seed_gives_same_records_and_rerun_replaces_old_shards(tmp_path, tiny_data_dir):
    again = make_tiny(tmp_path / "again", "--num_shards=1")
    assert sorted(_records(again)) == sorted(_records(tiny_data_dir))
    assert len(glob.glob(os.path.join(again, "brightness", "*"))) == 4  # 1 shard per split
    make_tiny(tmp_path / "again", "--num_shards=2", "--seed=4")  # rerun over the same output
    files = glob.glob(os.path.join(again, "brightness", "*"))
    assert len(files) == 8 and all("-of-00002" in f for f in files)
    assert sorted(_records(again)) != sorted(_records(tiny_data_dir))
    assert json.load(open(os.path.join(again, "metadata.json")))["seed"] == 4
