"""The benchmark's Beam job: transforms under TestPipeline, determinism, metadata, reruns."""
import glob
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import make_synthetic, records, shards, transforms
from relattr_tf.data import schema, writer
from relattr_tf.data.synthetic import render
from relattr_tf.data.synthetic.measure import subject_box, subject_mask
from tests.cli import run_module
from tests.conftest import TINY_ARGS, make_tiny


def _read(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def _shard_files(data_dir):
    """{relative path: bytes} of every shard file under the data directory."""
    paths = glob.glob(os.path.join(data_dir, "**", "*.tfrecord.gz"), recursive=True)
    return {os.path.relpath(p, data_dir): open(p, "rb").read() for p in sorted(paths)}


def _listed_records(data_dir, entry):
    return [r for name in entry["shards"] for r in _read(schema.join(data_dir, name))]


def test_crowd_label_drops_illegible_pairs_and_labels_the_rest():
    batches = [dict(attribute="brightness", split="train", id_a=["x"], id_b=["y"],
                    strength_a=np.array([0.5]), strength_b=np.array([0.0])),
               dict(attribute="tilt", split="train", id_a=["x"], id_b=["z"],
                    strength_a=np.array([0.0]), strength_b=np.array([np.nan]))]
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(batches) | beam.ParDo(make_synthetic.CrowdLabel(seed=0))
        pairs = out | "Pairs" >> beam.FlatMap(lambda batch: batch["pairs"])
        assert_that(pairs | beam.Map(lambda r: (r["id_b"], r["target"], r["true_target"])),
                    equal_to([("y", 1.0, 1.0)]), label="labelled")
        assert_that(out | beam.Map(lambda batch: (len(batch["pairs"]), batch["illegible"])),
                    equal_to([(1, 0), (0, 1)]), label="illegible")


def test_pairs_missing_an_image_are_dropped_and_counted():
    pairs = [dict(id_a="1", id_b="2", tag="kept"), dict(id_a="1", id_b="9", tag="dropped"),
             dict(id_a="8", id_b="9", tag="dropped twice over")]
    with test_pipeline.TestPipeline() as p:
        present = (p | "Pairs" >> beam.Create(pairs),
                   p | "Ids" >> beam.Create(["1", "2", "3"])) | transforms.DropPairsMissingImages()
        assert_that(present["kept"] | beam.Map(lambda r: r["tag"]), equal_to(["kept"]),
                    label="kept")
        assert_that(present["count"], equal_to([("pairs_missing_image", 2)]),  # once per pair
                    label="count")


def test_make_pairs_orders_members_and_gives_both_pair_sets_in_batches():
    members = [(f"id{i:02d}", np.array([i / 100.0] * 8)) for i in range(40)]
    with test_pipeline.TestPipeline() as p:
        batches = (p | beam.Create([("train", members[::-1])])
                   | beam.ParDo(make_synthetic.MakePairs(0, ["brightness"], {"train": 5},
                                                         batch_size=2)))
        assert_that(batches | "Sizes" >> beam.Map(lambda b: (b["split"], len(b["id_a"]))),
                    equal_to([("train", 2), ("train", 2), ("train", 1),
                              ("train_fine", 2), ("train_fine", 2), ("train_fine", 1)]),
                    label="batches")
        # strengths travel with the ids: id k has strength k / 100
        consistent = batches | "Check" >> beam.Map(lambda b: all(
            abs(int(i[2:]) / 100.0 - s) < 1e-12 for i, s in zip(b["id_a"], b["strength_a"])))
        assert_that(consistent, equal_to([True] * 6), label="strengths")


def test_record_sets_are_written_like_the_library_writer(tmp_path):
    keyed = [("pairs/a/train", f"k{i:03d}", f"record {i}".encode() * (i % 5 + 1))
               for i in range(40)] + [("images/t", f"i{i}", b"img" * i) for i in range(3)]
    prefixes = ["pairs/a/train", "images/t", "pairs/a/empty"]
    out = str(tmp_path / "beam")
    with test_pipeline.TestPipeline() as p:
        batches = p | beam.Create([keyed[:7], keyed[7:30], keyed[30:]])
        summaries = batches | shards.WriteRecordSets(out, prefixes, num_shards=3)
        assert_that(summaries | beam.Map(lambda kv: (kv[0], kv[1]["count"], len(kv[1]["shards"]))),
                    equal_to([("pairs/a/train", 40, 3), ("images/t", 3, 3),
                              ("pairs/a/empty", 0, 0)]))
    library = str(tmp_path / "library")
    for prefix in prefixes[:2]:
        writer.write_record_set(library, prefix, [(k, r) for pr, k, r in keyed if pr == prefix],
                                num_shards=3)
    # Same shard names and bytes, whatever the batching: empty shards are written too.
    assert _shard_files(out) == _shard_files(library)
    assert len(_shard_files(out)) == 6


def test_empty_tables_and_splits_are_listed_with_no_shards(tmp_path):
    out = str(tmp_path / "dir")
    images = [dict(table="all", id=f"i{k}", image=b"x" * k, source="s") for k in range(3)]
    pairs = [[dict(attribute="open", split="train", id_a="i0", id_b="i1", target=0.5,
                   source="s")]]
    splits = {("open", "train"): ["all"], ("open", "test"): ["all"]}
    with test_pipeline.TestPipeline() as p:
        _ = ((p | "Images" >> beam.Create(images), p | "Pairs" >> beam.Create(pairs))
             | records.WriteDataDir(out, {"dataset": "d"}, ["all", "unused"], splits))
    meta = schema.read_metadata(out)
    assert meta["images"]["unused"] == {"count": 0, "bytes": 0, "shards": []}
    assert meta["images"]["all"]["count"] == 3
    assert meta["images"]["all"]["shards"] == ["images/all-00000-of-00001.tfrecord.gz"]
    assert meta["splits"]["open"]["test"] == {"pairs": 0, "equal_pairs": 0, "bytes": 0,
                                              "shards": [], "image_tables": ["all"]}
    assert meta["splits"]["open"]["train"]["pairs"] == 1
    assert meta["splits"]["open"]["train"]["equal_pairs"] == 1
    assert sorted(_shard_files(out)) == ["images/all-00000-of-00001.tfrecord.gz",
                                         "pairs/open/train-00000-of-00001.tfrecord.gz"]


def test_job_writes_metadata_matching_its_shards(tiny_data_dir):
    meta = schema.read_metadata(tiny_data_dir)
    assert meta["dataset"] == "synthetic" and meta["image_size"] == [32, 32]
    assert meta["schema_version"] == 2 and len(meta["strength_names"]) == 8
    assert set(meta["splits"]) == {"brightness", "tilt"}
    assert set(meta["splits"]["brightness"]) == {"train", "train_fine", "test", "test_fine"}
    assert set(meta["images"]) == {"train", "test", "generator"}
    assert meta["attribute_info"]["tilt"]["flip_invariant"] is False
    listed = set()
    images = {}
    for table, entry in meta["images"].items():
        records = [schema.decode_record(r) for r in _listed_records(tiny_data_dir, entry)]
        assert len(records) == entry["count"] > 0 and len(entry["shards"]) == 2
        assert entry["bytes"] == sum(len(r) for r in _listed_records(tiny_data_dir, entry))
        images[table] = {r["id"]: r for r in records}
        listed |= set(entry["shards"])
    assert not set(images["train"]) & set(images["test"])  # disjoint image tables
    assert all(r["strengths"].shape == (8,) and r["box"].shape in ((4,), (0,))
               for table in images.values() for r in table.values())
    for attribute, splits in meta["splits"].items():
        for split, entry in splits.items():
            raw = _listed_records(tiny_data_dir, entry)
            pairs = [schema.decode_record(r) for r in raw]
            assert len(pairs) == entry["pairs"] > 0 and entry["bytes"] == sum(map(len, raw))
            assert sum(r["target"] == 0.5 for r in pairs) == entry["equal_pairs"]
            assert all(r["true_target"] in (0.0, 1.0) for r in pairs)
            assert {r["split"] for r in pairs} == {split}
            table = "train" if split.startswith("train") else "test"
            assert entry["image_tables"] == [table]
            assert all(r["id_a"] in images[table] and r["id_b"] in images[table] for r in pairs)
            assert "image_a" not in pairs[0]  # pairs name images, they do not hold them
            listed |= set(entry["shards"])
    assert listed == set(_shard_files(tiny_data_dir))  # no unlisted shard file


def test_subject_box_contains_the_subject(tiny_data_dir):
    rng = np.random.default_rng(0)
    for k in range(6):
        pixels = render.to_uint8(render.render(rng.uniform(0, 1, 8), rng, 64))
        box = subject_box(pixels)
        mask = subject_mask(pixels.astype(np.float32) / 255.0)
        assert (box is None) == (mask is None)
        if box is None:
            continue
        ymin, xmin, ymax, xmax = (np.array(box) * 64).round().astype(int)
        assert 0 <= ymin < ymax <= 64 and 0 <= xmin < xmax <= 64
        inside = np.zeros_like(mask)
        inside[ymin:ymax, xmin:xmax] = True
        assert mask[inside].sum() == mask.sum()  # every subject pixel lies in the box
        assert mask[ymin].any() and mask[ymax - 1].any() and mask[:, xmin].any() \
            and mask[:, xmax - 1].any()  # and the box is tight
    assert subject_box(np.zeros((16, 16, 3), np.uint8)) is None  # no subject
    meta = schema.read_metadata(tiny_data_dir)
    boxes = [schema.decode_record(r)["box"]
             for r in _listed_records(tiny_data_dir, meta["images"]["train"])]
    assert any(b.size == 4 for b in boxes)
    assert all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in boxes if b.size)


def test_same_seed_gives_byte_identical_shards_and_a_rerun_replaces_the_directory(
        tmp_path, tiny_data_dir):
    again = make_tiny(tmp_path / "again")
    assert _shard_files(again) == _shard_files(tiny_data_dir)  # same names, same bytes
    # Leftovers of an earlier run, in both formats, go when a job rewrites the directory.
    os.makedirs(os.path.join(again, "brightness"))
    for stale in ("brightness/train-00000-of-00004.tfrecord.gz",
                  "images/old-00000-of-00001.tfrecord.gz",
                  "pairs/brightness/train-00003-of-00004.tfrecord.gz", "rejected.csv"):
        open(os.path.join(again, stale), "wb").write(b"stale")
    make_tiny(tmp_path / "again", "--num_shards=1", "--seed=4")
    files = _shard_files(again)
    assert len(files) == 3 + 2 * 4 and all("-of-00001" in f for f in files)
    assert not os.path.exists(os.path.join(again, "brightness"))
    assert not os.path.exists(os.path.join(again, "rejected.csv"))
    assert sorted(files.values()) != sorted(_shard_files(tiny_data_dir).values())
    assert json.load(open(os.path.join(again, "metadata.json")))["seed"] == 4


def test_flag_errors_are_one_line_naming_the_flag(tmp_path):
    proc = run_module("beam_jobs.make_synthetic", f"--output_dir={tmp_path}", "--num_images=0",
                      check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "make_synthetic: argument --num_images: must be an integer >= 1, got '0' (see --help)")
    assert "Traceback" not in proc.stderr
    proc = run_module("beam_jobs.make_synthetic", f"--output_dir={tmp_path}", "--num_images=3",
                      "--verbosity=1", check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr  # --verbosity=1: traceback too
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "make_synthetic: --num_images=3 with --split_fractions=0.6,0.2,0.2 gives")
    with pytest.raises(SystemExit, match="--split_fractions: needs three positive numbers"):
        make_synthetic.run([f"--output_dir={tmp_path}", "--split_fractions=1,0,1"])
    with pytest.raises(SystemExit, match="--seed: must be an integer >= 0, got '-1'"):
        make_synthetic.run([f"--output_dir={tmp_path}", *TINY_ARGS, "--seed=-1"])


def test_metadata_is_not_written_when_records_went_missing_on_the_way_to_the_shards(tmp_path):
    """A runner that drops records between encoding and the shards (seen with Beam 2.77's
    multi-processing DirectRunner on a 1 GB table) fails the job instead of a short table."""
    out = str(tmp_path / "dir")
    summary = {"count": 2, "bytes": 10, "shards": ["images/all-00000-of-00001.tfrecord.gz"]}
    parts = [("set", ("images/all", summary)), ("count", ("images_written", 3)),
             ("count", ("pairs_written", 0)), ("start", None)]
    with pytest.raises(ValueError, match=r"3 image records were encoded but 2 reached the "
                                         r"shards; metadata.json was not written"):
        records._write_metadata((None, parts), out, {"dataset": "d"}, {"all": {}}, {})
    assert not os.path.exists(os.path.join(out, "metadata.json"))
    parts[1] = ("count", ("images_written", 2))
    assert records._write_metadata((None, parts), out, {"dataset": "d"}, {"all": {}},
                                   {})["images"]["all"]["count"] == 2
