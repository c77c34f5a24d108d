"""ATTIC part 2: the experiment through `python -m relattr_tf.attic_table` on a tiny benchmark
(one attribute, one seed, one round): the active loop, every baseline at equal label budget,
the table and the learning curve; killed with SIGKILL inside ATTIC's round and resumed by the
same command."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from relattr_tf.experiments import attic_baselines
from relattr_tf.config import ConfigError
from relattr_tf.data import pipeline, schema
from tests import attic_fixtures
from tests.cli import ROOT, run_module
from tests.test_core import event_values


@pytest.fixture(scope="module")
def experiment(tiny_data_dir, tmp_path_factory):
    """The experiment, killed once inside round 1's adversarial phase, then run to the end."""
    root = tmp_path_factory.mktemp("attic_experiment")
    data_dir = str(shutil.copytree(tiny_data_dir, root / "data"))
    generator = attic_fixtures.make_generator(root / "cvae" / "generator", data_dir=data_dir)
    model_dir = str(root / "experiment")
    args = ["--flagfile=configs/attic_smoke.flags", f"--data_dir={data_dir}",
            f"--generator_dir={generator}", f"--model_dir={model_dir}",
            "--attribute=brightness", "--attributes=brightness", "--seeds=0", "--rounds=1",
            "--real_pairs=16", "--val_steps=1", "--eval_split=test",
            f"--results_dir={root / 'results'}"]
    checkpoint = os.path.join(model_dir, "brightness", "seed-0", "attic", "round-01",
                              "adversarial", "checkpoints", "checkpoint.json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "relattr_tf.attic_table", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.time() + 600
    while not os.path.exists(checkpoint) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # inside the round: after its first epoch
    first = proc.communicate()[0]
    assert os.path.exists(checkpoint), first[-3000:]
    history = len(schema.read_metadata(data_dir)["history"])
    resumed = run_module("relattr_tf.attic_table", *args, timeout=900)
    return dict(model_dir=model_dir, data_dir=data_dir, generator=generator, first=first,
                resumed=resumed.stdout, history_at_kill=history)


@pytest.mark.slow  # the experiment takes 3-4 minutes; the ATTIC loop itself runs in
# test_people_label_between_two_runs_of_the_command and tests/test_notebooks.py
def test_a_run_killed_inside_a_round_resumes_in_that_round(experiment):
    assert "round 1 of 1: adversarial phase" in experiment["first"]
    assert "results_attic" not in experiment["first"]
    # The pretrained ranker was reused, the adversarial phase resumed after its epoch 1.
    assert "pretraining" in experiment["resumed"] and "resuming after epoch 1" in \
        experiment["resumed"]
    before_round = experiment["resumed"].split("round 1 of 1")[0]
    assert "epoch 1/" not in before_round  # the finished pretraining was not run again
    assert experiment["resumed"].count("training deepstn_crop") >= 5  # the baselines ran


@pytest.mark.slow  # the experiment takes 3-4 minutes; the ATTIC loop itself runs in
# test_people_label_between_two_runs_of_the_command and tests/test_notebooks.py
def test_the_table_has_both_blocks_every_method_and_its_provenance(experiment):
    md = open(os.path.join(experiment["model_dir"], "results_attic.md")).read()
    assert "Command: `python -m relattr_tf.attic_table" in md and "sha256" in md
    assert "label budget n = 16, 1 round(s) of 8 pairs" in md and "cores; " in md
    # One ledger record per block and method, which the experiment's table is made from.
    ledger = os.path.join(os.path.dirname(experiment["model_dir"]), "results", "experiment")
    assert len(os.listdir(ledger)) == 8
    for row in ("Normal: Real |", "Normal: Real+ |", "Normal: Jitter |",
                "Normal: Semantic Jitter |", "Normal: ATTIC |", "Auto: Real |",
                "Auto: Semantic Jitter |", "Auto: ATTIC |"):
        assert row in md
    rows = list(csv.DictReader(open(os.path.join(experiment["model_dir"],
                                                 "results_attic.csv"))))
    assert len(rows) == 8 and all(0 <= float(r["accuracy"]) <= 1 for r in rows)


@pytest.mark.slow  # the experiment takes 3-4 minutes; the ATTIC loop itself runs in
# test_people_label_between_two_runs_of_the_command and tests/test_notebooks.py
def test_each_method_trained_on_its_own_label_budget(experiment):
    meta = schema.read_metadata(experiment["data_dir"])
    splits = meta["splits"]["brightness"]
    assert splits["train-n16-s0"]["pairs"] == 16 and splits["train-n8-s0"]["pairs"] == 8
    real = pipeline.read_pairs(meta, experiment["data_dir"], "brightness", "train-n16-s0")
    half = pipeline.read_pairs(meta, experiment["data_dir"], "brightness", "train-n8-s0")
    assert set(half[schema.ID_A]) <= set(real[schema.ID_A])  # nested draws
    cell = os.path.join(experiment["model_dir"], "brightness", "seed-0")
    config = lambda run: json.load(open(os.path.join(cell, run, "config.json")))["ranker"]
    assert config("real-r01")["train_split"] == ["train-n16-s0:16"]
    real, synthetic = config("semantic_jitter-r01")["train_split"]
    assert real == "train-n8-s0:8"  # every pair alike: each split weighted by its size
    name, weight = synthetic.split(":")
    assert float(weight) == splits[name]["pairs"] and "-sj-brightness-r01" in name
    assert len(config("real_plus")["train_split"]) == 2
    jitter = config("jitter")["train_split"][1].split(":")[0]
    assert splits[jitter]["pairs"] == 16  # a jittered copy of each real pair
    attic_split = [s for s in splits if s.endswith("attic-brightness-r01")][0]
    assert splits[attic_split]["pairs"] <= 8
    for run in ("real-r01", "semantic_jitter-r01", "real_plus", "jitter", "attic-auto"):
        assert config(run)["warm_start"].endswith("attic/pretrained_ranker")
    # Killed before round 1's labels: they were appended once, by the resumed run.
    sources = [h for h in meta["history"] if "attic-brightness-r01" in json.dumps(h)]
    assert len(sources) == 1


@pytest.mark.slow  # the experiment takes 3-4 minutes; the ATTIC loop itself runs in
# test_people_label_between_two_runs_of_the_command and tests/test_notebooks.py
def test_the_learning_curve_is_a_csv_a_plot_and_tensorboard_scalars(experiment):
    model_dir = experiment["model_dir"]
    rows = list(csv.DictReader(open(os.path.join(model_dir, "learning_curve.csv"))))
    assert {(r["method"], r["labels"]) for r in rows} == {
        (m, x) for m in ("real", "semantic_jitter", "attic") for x in ("8", "16")}
    for r in rows:
        if r["method"] == "real" or r["labels"] == "8":
            assert float(r["gain_over_real"]) == 0.0
    from PIL import Image
    assert Image.open(os.path.join(model_dir, "learning_curve.png")).size[0] > 300
    tags = event_values(os.path.join(model_dir, "tensorboard"))
    assert tags[("attic", "gain_over_real/brightness")] == [8, 16]


def test_jitter_moves_pixels_but_keeps_the_picture():
    image = (np.random.default_rng(0).uniform(size=(32, 32, 3)) * 255).astype(np.uint8)
    out = attic_baselines.jitter(image, np.random.default_rng(1))
    assert out.shape == (32, 32, 3) and 0 <= out.min() and out.max() <= 1
    assert 0.01 < np.abs(out - image / 255.0).mean() < 0.4


def test_people_label_between_two_runs_of_the_command(tiny_data_dir, oracle_generator,
                                                     tmp_path):
    """The human round trip: the command pretrains the ranker and stops at the package, a
    Label Studio export of it comes back through --import_labels, and the run goes on to the
    next round's package. It draws with the oracle generator (the other ATTIC tests with a
    learned decoder), so ATTIC runs with either."""
    from relattr_tf.labelling import label_studio
    data_dir = str(shutil.copytree(tiny_data_dir, tmp_path / "data"))
    generator = os.path.join(oracle_generator[0], "generator")
    model_dir = str(tmp_path / "human")
    args = ["--flagfile=configs/attic_smoke.flags", f"--data_dir={data_dir}",
            f"--generator_dir={generator}", f"--model_dir={model_dir}", "--warm_start=",
            "--attribute=brightness", "--val_steps=1", "--eval_split=test",
            "--stop_after_export", "--retrain=false"]
    first = run_module("relattr_tf.attic", *args)
    assert "pretraining deepstn_crop" in first.stdout
    assert "--import_labels=EXPORT.json" in first.stdout and "--stop_after_export" in first.stdout
    package_dir = os.path.join(model_dir, "round-01", "labelling")
    assert not os.path.exists(os.path.join(model_dir, "round-01", "labels.json"))
    tasks = json.load(open(os.path.join(package_dir, "tasks.json")))
    export = [label_studio.export_task(i + 1, t["data"], [("ann", "more", 1.0)] * 3)
              for i, t in enumerate(tasks)]
    export_path = str(tmp_path / "export.json")
    json.dump(export, open(export_path, "w"))
    second = run_module("relattr_tf.attic", *args, f"--import_labels={export_path}")
    # Round 1's answers imported (not stopped again at its package), nothing retrained.
    assert "16 of 16 pairs accepted" in second.stdout and "epoch 1/" not in second.stdout
    assert os.path.exists(os.path.join(model_dir, "round-01", "labels.json"))
    from relattr_tf import config_flags
    from relattr_tf.training import attic, task  # noqa: F401  attic registers its task
    bad, _ = config_flags.from_args([*args[:2], f"--generator_dir={tmp_path / 'none'}"])
    with pytest.raises(ConfigError, match=r"--generator_dir=.*: no generator here"):
        task.make_task(bad).check_config(1)
