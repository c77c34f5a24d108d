"""Pretraining the trunk on the benchmark's pretrain table: the labelled table, the command, the
Keras-layout weight file the rankers load, the linear probe, and one-line errors."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from relattr_tf import config as config_lib
from relattr_tf.artifacts import run_config
from relattr_tf.data import schema
from relattr_tf.data.synthetic import render
from relattr_tf.models import vgg16
from relattr_tf.training import ranker
from tests.cli import run_module
from tests.conftest import make_tiny


def _raw(data_dir, table):
    meta = schema.read_metadata(data_dir)
    files = schema.shard_paths(data_dir, schema.image_table(meta, data_dir, table), table)
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _records(data_dir, table):
    return [schema.decode_record(r) for r in _raw(data_dir, table)]


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("pretrain_data"), "--pretrain_images=64")


def test_the_pretrain_table_is_labelled_and_leaves_the_other_tables_as_they_were(
        pretrain_data, tiny_data_dir):
    meta = schema.read_metadata(pretrain_data)
    assert meta["images"]["pretrain"]["count"] == 64
    assert [h["name"] for h in schema.label_heads(meta, pretrain_data, "pretrain")] == \
        [h["name"] for h in render.LABEL_HEADS]
    for table in ("train", "test", "generator"):  # the rankers' images are unchanged
        assert _raw(pretrain_data, table) == _raw(tiny_data_dir, table)
    ids = {r["id"] for r in _records(tiny_data_dir, "train")}
    for record in _records(pretrain_data, "pretrain"):
        assert record["id"] not in ids
        count, cell, orientation, *colours = record["labels"]
        assert count in (0, 1, 2) and 0 <= cell < 9 and 0 <= orientation < 6
        assert 1 <= sum(colours) <= count + 1  # two distractors may share a colour
    with pytest.raises(schema.DataError, match="has no labels"):
        schema.label_heads(meta, pretrain_data, "train")


def test_scene_labels_follow_the_rendered_scene():
    rng = np.random.default_rng(5)
    scene = {}
    render.render(rng.uniform(size=8), rng, 32, scene)
    labels = render.scene_labels(scene)
    x, y = scene["subject_centre"]
    assert labels[1] == int(y * 3) * 3 + int(x * 3)
    assert labels[0] == len(scene["distractor_colours"]) - 1
    assert set(np.flatnonzero(labels[3:])) == set(scene["distractor_colours"])


@pytest.fixture(scope="module")
def pretrained(pretrain_data, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("pretrained"))
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      f"--data_dir={pretrain_data}", f"--model_dir={model_dir}",
                      "--validation_fraction=0.25")
    return model_dir, proc.stdout


def test_pretrain_command_writes_the_weight_file_accuracy_and_probe(pretrained, tiny_data_dir):
    model_dir, stdout = pretrained
    assert "epoch 2/2" in stdout and "linear probe" in stdout
    result = json.load(open(os.path.join(model_dir, "eval_pretrain.json")))
    assert set(result["heldout_accuracy"]) == {h["name"] for h in render.LABEL_HEADS}
    assert all(0 <= a <= 1 for a in result["heldout_accuracy"].values())
    probe = result["probe"]["attributes"]
    assert set(probe) == set(schema.read_metadata(tiny_data_dir)["strength_names"])
    assert all(-1 <= p["spearman"] <= 1 for p in probe.values() if np.isfinite(p["spearman"]))
    assert vgg16.first_conv_channels(os.path.join(model_dir, "vgg16_notop.h5")) == 8


def test_a_ranker_starts_from_the_pretrained_trunk(pretrained, tiny_data_dir):
    model_dir, _ = pretrained
    weights = os.path.join(model_dir, "vgg16_notop.h5")
    config = config_lib.Config(
        model="ranknet", data=config_lib.DataConfig(data_dir=tiny_data_dir, image_size=32),
        family=config_lib.RankerConfig(width=0.125, backbone_weights=weights))
    task = ranker.RankerTask(config)
    task.check_config(1)
    task.build()
    expected = vgg16.build_vgg16_trunk(32, 0.125)
    vgg16.load_imagenet_weights(expected, weights)
    for a, b in zip(task.parts.trunk.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(config_lib.ConfigError, match="8 first-layer channels; --width=0.25"):
        ranker.RankerTask(config.with_values(width=0.25)).check_config(1)


def test_pretrain_errors_are_one_line(tiny_data_dir, tmp_path):
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      f"--data_dir={tiny_data_dir}", f"--model_dir={tmp_path / 'm'}",
                      check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"relattr_tf.pretrain: {tiny_data_dir}/metadata.json: ")
    assert "image table 'pretrain'" in last
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      "--model=dacrl", f"--model_dir={tmp_path / 'm'}", check=False)
    assert proc.returncode == 1 and "--model=dacrl is not a pretrain model" in proc.stderr


def test_ablation_from_the_pretrained_trunk_reports_mean_and_std_over_seeds(
        pretrained, pretrain_data, tmp_path):
    """A smoke-size ablation: its ledger, a second run that skips every finished cell, and
    report turning the ledger into the same table."""
    model_dir, _ = pretrained
    out, results = str(tmp_path / "ablation"), str(tmp_path / "results")
    args = ["--flagfile=configs/smoke.flags", f"--data_dir={pretrain_data}",
            f"--model_dir={out}", f"--backbone_weights={model_dir}/vgg16_notop.h5",
            "--models=dacrl", "--pair_sets=fine", "--attributes=brightness",
            "--seeds=0,1", "--eval_split=test_fine", "--tensorboard_images=0",
            f"--results_dir={results}", "--study=smoke_ablation"]
    proc = run_module("relattr_tf.ablation", *args)
    table = open(os.path.join(out, "ablation.md")).read()
    assert "| fine | brightness |" in table and "| fine | mean |" in table
    assert f"Data: {pretrain_data}, sha256 " in table and "Backbone: " in table
    assert "(2 cells;" in table and "--seeds=0,1" in table
    assert table.split("| pair set |")[1].count("±") == 2 * 2  # 2 rows x (accuracy, truth)
    csv = open(os.path.join(out, "ablation.csv")).read().splitlines()
    assert "dacrl_accuracy_std" in csv[0] and len(csv) == 3
    cells = sorted(os.listdir(os.path.join(results, "smoke_ablation")))
    assert cells == [f"pair_set-fine__attribute-brightness__model-dacrl__seed-{s}.json"
                     for s in (0, 1)]
    record = json.load(open(os.path.join(results, "smoke_ablation", cells[0])))
    assert record["kind"] == "ablation" and record["config"]["seed"] == 0
    assert record["inputs"]["backbone_weights_sha256"] and record["data_sha256"]
    assert record["machine"]["cpu_flags"] and record["seconds"] > 0
    assert 0 <= record["metrics"]["accuracy"] <= 1 and "ablation" in record["command"]
    for seed in (0, 1):
        saved = run_config.load_run_config(os.path.join(out, "fine", "brightness", "dacrl",
                                                        f"seed{seed}"))
        assert saved.family.backbone_weights.endswith("vgg16_notop.h5")
        assert saved.train.seed == seed
    again = run_module("relattr_tf.ablation", *args)  # every cell is in the ledger: skipped
    assert not any(line.startswith("training ") for line in again.stdout.splitlines())
    assert again.stdout.count(": finished") == 2
    assert proc.stdout.strip().splitlines()[-1] in again.stdout
    # Another recipe in the same study is refused, naming the cell's file.
    other = run_module("relattr_tf.ablation", *args, "--head_lr=0.1", check=False)
    assert other.returncode == 1
    assert "finished with another recipe (head_lr changed)" in other.stderr
    docs = str(tmp_path / "docs")
    run_module("relattr_tf.report", "--study=smoke_ablation", f"--results_dir={results}",
               f"--out={docs}")
    generated = open(os.path.join(docs, "smoke_ablation.md")).read()
    assert generated.split("| pair set |")[1] == table.split("| pair set |")[1]
    assert os.path.exists(os.path.join(docs, "smoke_ablation.png"))
