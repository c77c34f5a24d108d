"""The real-data converters on fixtures in the documented formats."""
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs import convert_lfw10, convert_lfw_attributes, convert_osr_pubfig, convert_zappos
from relattr_tf.data import matfiles, schema
from tests import real_fixtures
from tests.cli import run_module, smoke_args


def _records(data_dir, entry):
    files = [schema.join(data_dir, name) for name in entry["shards"]]
    return [schema.decode_record(r.numpy())
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")] if files else []


def _pairs(data_dir, attribute, split):
    meta = schema.read_metadata(data_dir)
    return _records(data_dir, schema.pair_split(meta, data_dir, attribute, split))


def _images(data_dir, table):
    meta = schema.read_metadata(data_dir)
    return {r["id"]: r for r in _records(data_dir, schema.image_table(meta, data_dir, table))}


def test_pubfig_class_orderings_become_all_pairs_with_ties(tmp_path):
    names = real_fixtures.make_pubfig(str(tmp_path / "pubfig"))
    out = str(tmp_path / "out")
    convert_osr_pubfig.run(["--dataset=pubfig", f"--input_dir={tmp_path / 'pubfig'}",
                            f"--output_dir={out}"])
    meta = schema.read_metadata(out)
    assert meta["attributes"] == ["Smiling", "Young"]
    assert meta["splits"]["Smiling"]["train"]["pairs"] == 15  # C(6, 2) training images
    assert meta["splits"]["Smiling"]["test"]["pairs"] == 15
    assert meta["splits"]["Smiling"]["train"]["equal_pairs"] == 3  # same-class pairs
    assert meta["splits"]["Young"]["train"]["equal_pairs"] == 3 + 4  # plus tied Bob/Cid
    by_ids = {(p["id_a"], p["id_b"]): p for p in _pairs(out, "Smiling", "train")}
    assert by_ids[("Ann_1.jpg", "Bob_1.jpg")]["target"] == 1.0  # i < j order, Ann smiles more
    assert by_ids[("Bob_2.jpg", "Cid_1.jpg")]["target"] == 1.0
    young = {(p["id_a"], p["id_b"]): p for p in _pairs(out, "Young", "train")}
    assert young[("Ann_1.jpg", "Bob_1.jpg")]["target"] == 0.0
    assert young[("Bob_1.jpg", "Cid_2.jpg")]["target"] == 0.5
    # Each image once, in the table of its split, with its class ranks as strengths.
    train, test = _images(out, "train"), _images(out, "test")
    assert sorted(train) == ["Ann_1.jpg", "Ann_2.jpg", "Bob_1.jpg", "Bob_2.jpg", "Cid_1.jpg",
                             "Cid_2.jpg"] and len(test) == 6
    np.testing.assert_array_equal(train["Ann_1.jpg"]["strengths"], [3, 1])
    np.testing.assert_array_equal(test["Cid_4.jpg"]["strengths"], [1, 2])
    assert meta["strength_names"] == meta["attributes"]
    with open(os.path.join(tmp_path / "pubfig" / "images", "Bob_3.jpg"), "rb") as f:
        assert test["Bob_3.jpg"]["image"] == f.read()  # source bytes kept
    for split, table in (("train", train), ("test", test)):
        assert meta["splits"]["Young"][split]["image_tables"] == [split]
        assert all(p["id_a"] in table and p["id_b"] in table for p in _pairs(out, "Young", split))
    assert open(os.path.join(out, "rejected.csv")).read().strip() == "image,reason"
    assert len(names) == 12 and "data.mat" in next(iter(meta["sources"])).split("/")[-1]


def test_test_pairs_can_be_subsampled_with_a_seed(tmp_path):
    real_fixtures.make_pubfig(str(tmp_path / "pubfig"))
    counts = []
    for run in range(2):
        out = str(tmp_path / f"out{run}")
        convert_osr_pubfig.run(["--dataset=pubfig", f"--input_dir={tmp_path / 'pubfig'}",
                                f"--output_dir={out}", "--test_pair_fraction=0.5", "--seed=1"])
        counts.append(sorted((p["id_a"], p["id_b"]) for p in _pairs(out, "Young", "test")))
    assert counts[0] == counts[1] and 0 < len(counts[0]) < 15
    with pytest.raises(SystemExit, match=r"--test_pair_fraction: must be a number > 0 and <= 1, "
                                         r"got '0'"):
        convert_osr_pubfig.run(["--dataset=pubfig", f"--input_dir={tmp_path / 'pubfig'}",
                                f"--output_dir={out}", "--test_pair_fraction=0"])


def test_unreadable_images_are_rejected_listed_and_fail_past_the_threshold(tmp_path):
    real_fixtures.make_pubfig(str(tmp_path / "pubfig"), bad_image="Cid_4.jpg")
    out = str(tmp_path / "out")
    args = ["--dataset=pubfig", f"--input_dir={tmp_path / 'pubfig'}", f"--output_dir={out}"]
    counts = convert_osr_pubfig.run(args + ["--max_rejected_fraction=0.1"])
    rejected = open(os.path.join(out, "rejected.csv")).read().splitlines()
    assert len(rejected) == 2 and "Cid_4.jpg" in rejected[1]
    meta = schema.read_metadata(out)
    assert meta["splits"]["Smiling"]["test"]["pairs"] == 10  # 5 of 15 test pairs used Cid_4
    assert meta["images"]["test"]["count"] == 5 and "Cid_4.jpg" not in _images(out, "test")
    assert counts["images_rejected"] == 1 and counts["pairs_missing_image"] == 2 * 5
    assert meta["job_counts"] == counts
    with pytest.raises(SystemExit, match=r"1 of 12 images could not be read .*rejected.csv"):
        convert_osr_pubfig.run(args)  # default threshold 0.01
    assert not os.path.exists(os.path.join(out, "metadata.json"))


def test_label_file_errors_name_the_file_and_the_variable(tmp_path):
    root = tmp_path / "pubfig"
    real_fixtures.make_pubfig(str(root))
    import scipy.io
    mat = scipy.io.loadmat(str(root / "data.mat"))
    del mat["relative_ordering"]
    scipy.io.savemat(str(root / "data.mat"), {k: v for k, v in mat.items()
                                              if not k.startswith("__")})
    with pytest.raises(matfiles.MatError, match=r"data.mat: variable 'relative_ordering' "
                                                r"missing \(found: attribute_names"):
        convert_osr_pubfig.run(["--dataset=pubfig", f"--input_dir={root}",
                                f"--output_dir={tmp_path / 'out'}"])
    with pytest.raises(matfiles.MatError, match="nothing.mat: cannot read"):
        matfiles.load_mat(str(tmp_path / "nothing.mat"))


def test_a_truncated_matlab_v73_file_is_a_mat_error_naming_it(tmp_path):
    path = str(tmp_path / "zappos-labels-real-lexi.mat")
    real_fixtures.make_lexi_v73(path)
    data = open(path, "rb").read()
    for size in (1024, len(data) // 2, len(data) - 64):
        open(path, "wb").write(data[:size])
        with pytest.raises(matfiles.MatError, match=r"zappos-labels-real-lexi.mat: not a "
                                                    r"readable MATLAB"):
            matfiles.load_mat(path)


def test_lfw10_votes_become_targets_and_agreement(tmp_path):
    real_fixtures.make_lfw10(str(tmp_path / "LFW10"))
    out = str(tmp_path / "out")
    convert_lfw10.run([f"--input_dir={tmp_path / 'LFW10'}", f"--output_dir={out}",
                       "--attributes=smile,young"])
    pairs = {p["id_a"]: p for p in _pairs(out, "smile", "train")}
    assert [pairs[f"{n}.jpg"]["target"] for n in (1, 2, 3, 4)] == [1.0, 0.0, 0.5, 1.0]
    assert pairs["1.jpg"]["id_b"] == "2.jpg"  # column 2 is image A, column 3 image B
    assert pairs["2.jpg"]["agreement"] == pytest.approx(0.8)
    meta = schema.read_metadata(out)
    assert meta["splits"]["young"]["test"]["equal_pairs"] == 1
    assert meta["images"]["all"]["count"] == 8  # each image once, for both attributes
    assert meta["splits"]["smile"]["test"]["image_tables"] == ["all"]
    assert _images(out, "all")["3.jpg"]["strengths"].size == 0  # no strengths known
    with pytest.raises(SystemExit, match="unknown attribute.*shiny"):
        convert_lfw10.run([f"--input_dir={tmp_path / 'LFW10'}", f"--output_dir={out}",
                           "--attributes=shiny"])


def test_zap50k1_ten_splits_path_fixes_and_a_known_pair(tmp_path):
    order = real_fixtures.make_zappos(str(tmp_path / "zappos"))
    out = str(tmp_path / "out")
    convert_zappos.run(["--collection=zap50k1", f"--input_dir={tmp_path / 'zappos'}",
                        f"--output_dir={out}", "--max_rejected_fraction=0.5"])
    meta = schema.read_metadata(out)
    assert meta["attributes"] == ["open", "pointy", "sporty", "comfort"]
    assert set(meta["splits"]["open"]) == {f"{k}-{s:02d}" for k in ("train", "test")
                                           for s in range(1, 11)}
    assert meta["splits"]["open"]["train-01"]["pairs"] == 8
    assert meta["splits"]["open"]["test-10"]["pairs"] == 4
    every = [p for s in range(1, 11) for p in _pairs(out, "open", f"train-{s:02d}")
             + _pairs(out, "open", f"test-{s:02d}")]
    known = [p for p in every if p["id_a"] == "Shoes/Oxfords/Bostonian/100627.72.jpg"
             and p["id_b"] == "Shoes/Oxfords/Neil M./200.1.jpg"]
    assert known and all(p["target"] == 1.0 and p["confidence"] == 1.0 for p in known)
    assert any("Levi's" in p["id_a"] or "Levi's" in p["id_b"] for p in every)  # &#174; folder
    rejected = open(os.path.join(out, "rejected.csv")).read()
    assert "Missing/600.4.jpg" in rejected  # the one image not in the tree
    pointy = [p for s in range(1, 11) for p in _pairs(out, "pointy", f"train-{s:02d}")]
    assert not any("600.4" in p["id_a"] for p in pointy)  # its pairs were dropped
    images = _images(out, "all")
    assert sorted(images) == sorted(real_fixtures.ZAPPOS_PATHS[:5])  # by image-path.mat name
    assert meta["image_folder"] == "original"
    assert order[0].shape == (12, 6)


def test_zap50k2_trains_on_ordered_pairs_and_tests_on_fine_grained(tmp_path):
    real_fixtures.make_zappos(str(tmp_path / "zappos"), with_missing_image_pair=False)
    out = str(tmp_path / "out")
    convert_zappos.run(["--collection=zap50k2", f"--input_dir={tmp_path / 'zappos'}",
                        f"--output_dir={out}", "--include_equal", "--max_rejected_fraction=0.5"])
    meta = schema.read_metadata(out)
    assert meta["splits"]["sporty"]["train"]["pairs"] == 13  # 12 ordered + 1 equal
    assert meta["splits"]["sporty"]["train"]["equal_pairs"] == 1
    assert meta["splits"]["sporty"]["test"]["pairs"] == 5


def test_lexi_reads_matlab_v73_with_a_seeded_split(tmp_path):
    root = tmp_path / "zappos"
    real_fixtures.make_zappos(str(root), with_missing_image_pair=False)
    matrices = real_fixtures.make_lexi_v73(
        str(root / "ut-zap50k-lexi" / "zappos-labels-real-lexi.mat"))
    loaded = matfiles.load_mat(str(root / "ut-zap50k-lexi" / "zappos-labels-real-lexi.mat"))
    np.testing.assert_array_equal(matfiles.cells(loaded["mturkOrder"])[3], matrices[3])
    assert matfiles.strings(loaded["attrNames"])[0] == "casual"
    out = str(tmp_path / "out")
    convert_zappos.run(["--collection=lexi", f"--input_dir={root}", f"--output_dir={out}",
                        "--seed=2", "--max_rejected_fraction=0.5"])
    meta = schema.read_metadata(out)
    assert meta["attributes"] == real_fixtures.LEXI_NAMES
    split = meta["splits"]["sleek"]
    assert split["train"]["pairs"] + split["test"]["pairs"] == 20 and split["test"]["pairs"] > 0


def test_a_bad_label_code_is_a_one_line_error(tmp_path):
    root = tmp_path / "zappos"
    real_fixtures.make_zappos(str(root))
    import scipy.io
    labels = scipy.io.loadmat(str(root / "ut-zap50k-data" / "zappos-labels.mat"))
    labels["mturkOrder"][0, 2][4, 3] = 7
    scipy.io.savemat(str(root / "ut-zap50k-data" / "zappos-labels.mat"),
                     {k: v for k, v in labels.items() if not k.startswith("__")})
    with pytest.raises(matfiles.MatError, match=r"zappos-labels.mat: mturkOrder\{3\} row 5: "
                                                r"label 7, expected 1"):
        convert_zappos.run(["--collection=zap50k2", f"--input_dir={root}",
                            f"--output_dir={tmp_path / 'out'}"])
    proc = run_module("beam_jobs.convert_zappos", "--collection=zap50k2", f"--input_dir={root}",
                      f"--output_dir={tmp_path / 'out'}", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("convert_zappos: ")
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "zappos-labels.mat: mturkOrder{3} row 5: label 7, expected 1 (A more), 2 (B more) or "
        "3 (equal)")


def test_lfw_attribute_scores_land_on_the_right_images(tmp_path):
    root = tmp_path / "LFW"
    scores = real_fixtures.make_lfw_attributes(str(root))
    out = str(tmp_path / "out")
    counts = convert_lfw_attributes.run([f"--input_dir={root}", f"--output_dir={out}",
                                         "--max_rejected_fraction=0.5", "--image_size=16"])
    meta = schema.read_metadata(out)
    assert meta["attributes"] == [] and meta["splits"] == {}
    assert meta["strength_names"] == real_fixtures.LFW_ATTRIBUTE_NAMES  # not shifted by one
    assert meta["images"]["generator"]["count"] == 3 and meta["rows"] == 6
    images = _images(out, "generator")
    assert sorted(images) == sorted(scores) == [
        "Aaron_Eckhart_0001", "Aaron_Eckhart_0002", "Mary_Jo_Van_Dyke_0013"]
    for image_id, expected in scores.items():
        np.testing.assert_allclose(images[image_id]["strengths"], expected, rtol=1e-6)
    assert tf.io.decode_jpeg(images["Mary_Jo_Van_Dyke_0013"]["image"]).shape == (16, 16, 3)
    rejected = open(os.path.join(out, "rejected.csv")).read().splitlines()
    assert rejected[0] == "image,reason" and len(rejected) == 4
    assert any("Zed_Missing/Zed_Missing_0001.jpg" in line for line in rejected)
    assert any("lfw_attributes.txt:7" in line and "6 columns, expected 7" in line
               for line in rejected)
    assert any("lfw_attributes.txt:8" in line and "non-numeric score 'abc' in column 'Asian'"
               in line for line in rejected)
    assert counts["rows_rejected"] == 2 and counts["images_rejected"] == 1
    with pytest.raises(SystemExit, match=r"3 of 6 rows were rejected .*rejected.csv"):
        convert_lfw_attributes.run([f"--input_dir={root}", f"--output_dir={out}"])
    assert not os.path.exists(os.path.join(out, "metadata.json"))


def test_lfw_attribute_header_and_flag_errors_are_one_line(tmp_path):
    root = tmp_path / "LFW"
    real_fixtures.make_lfw_attributes(str(root))
    path = root / "lfw_attributes.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "person\tnumber\tMale"] + lines[2:]) + "\n")
    with pytest.raises(schema.DataError, match=r"lfw_attributes.txt: not an LFW attribute file"):
        convert_lfw_attributes.run([f"--input_dir={root}", f"--output_dir={tmp_path / 'out'}"])
    proc = run_module("beam_jobs.convert_lfw_attributes", f"--input_dir={root}",
                      f"--output_dir={tmp_path / 'out'}", check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert last.startswith(f"convert_lfw_attributes: {path}: not an LFW attribute file: line 2")
    proc = run_module("beam_jobs.convert_lfw_attributes", f"--input_dir={root}",
                      f"--output_dir={tmp_path / 'out'}", "--max_rejected_fraction=1.5",
                      check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        "convert_lfw_attributes: argument --max_rejected_fraction: must be a number >= 0 and "
        "<= 1, got '1.5' (see --help)")


def test_converted_real_data_trains_end_to_end(tmp_path):
    real_fixtures.make_lfw10(str(tmp_path / "LFW10"))
    data_dir = str(tmp_path / "lfw10")
    run_module("beam_jobs.convert_lfw10", f"--input_dir={tmp_path / 'LFW10'}",
               f"--output_dir={data_dir}", "--attributes=smile")
    model_dir = str(tmp_path / "model")
    proc = run_module("relattr_tf.train", *smoke_args(data_dir, model_dir, "--attribute=smile",
                                                      "--batch_size=4", "--epochs=1",
                                                      "--tensorboard_images=0"))
    assert "smile / test: accuracy" in proc.stdout


@pytest.mark.slow  # converted data trains in the default run (test_converted_real_data...)
def test_numbered_splits_are_trained_and_summarised(tmp_path):
    real_fixtures.make_zappos(str(tmp_path / "zappos"), with_missing_image_pair=False)
    data_dir = str(tmp_path / "zap50k1")
    convert_zappos.run(["--collection=zap50k1", f"--input_dir={tmp_path / 'zappos'}",
                        f"--output_dir={data_dir}", "--max_rejected_fraction=0.5"])
    model_dir = str(tmp_path / "splits")
    proc = run_module("relattr_tf.train_splits", *smoke_args(
        data_dir, model_dir, "--attribute=open", "--split_numbers=1,2", "--batch_size=4",
        "--epochs=1", "--tensorboard_images=0", f"--results_dir={tmp_path / 'results'}"))
    assert "| open |" in proc.stdout and "| mean |" in proc.stdout
    ledger = sorted(os.listdir(tmp_path / "results" / "splits"))
    assert ledger == [f"attribute-open__split-{k}__seed-0.json" for k in (1, 2)]
    lines = open(os.path.join(model_dir, "splits_summary.csv")).read().splitlines()
    assert lines[1].startswith("open,") and lines[1].endswith(",2")
    assert os.path.exists(os.path.join(model_dir, "split-02", "open", "eval_test-02.json"))
