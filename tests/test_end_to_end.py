"""The user's path, end to end: Beam job -> train -> evaluate, as commands."""
import json
import os

import pytest

from relattr_tf.data import schema
from tests.cli import run_module, smoke_args
from tests.conftest import TINY_ARGS


def test_beam_job_then_train_then_evaluate(tmp_path):
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "model")
    job = run_module("beam_jobs.make_synthetic", f"--output_dir={data_dir}", *TINY_ARGS,
                     "--runner=DirectRunner")
    assert "make_synthetic: wrote" in job.stdout and "pairs_written=" in job.stdout
    schema.read_metadata(data_dir)
    train = run_module("relattr_tf.train", *smoke_args(data_dir, model_dir, "--cpu_devices=2",
                                                       "--strategy=mirrored"))
    assert "2 replica(s)" in train.stdout and "epoch 2/2" in train.stdout
    evaluate = run_module("relattr_tf.evaluate", f"--model_dir={model_dir}",
                          f"--data_dir={data_dir}", "--attribute=brightness",
                          "--split=test_fine")
    assert evaluate.stdout.startswith("brightness / test_fine: accuracy ")
    result = json.load(open(os.path.join(model_dir, "eval_test_fine.json")))
    meta = schema.read_metadata(data_dir)["splits"]["brightness"]["test_fine"]
    assert result["pairs_used"] + result["pairs_excluded_equal"] == meta["pairs"]
    assert result["truth_pairs"] == meta["pairs"]


@pytest.mark.slow  # one network per attribute; one attribute trains in the default run
def test_all_attributes_writes_the_table(tiny_data_dir, tmp_path):
    model_dir = str(tmp_path / "all")
    run_module("relattr_tf.train", *smoke_args(tiny_data_dir, model_dir, "--attribute=all",
                                               "--epochs=1", "--tensorboard_images=0"))
    table = open(os.path.join(model_dir, "results_test.md")).read()
    assert "| brightness |" in table and "| tilt |" in table and "| mean |" in table
    evaluate = run_module("relattr_tf.evaluate", f"--model_dir={model_dir}",
                          f"--data_dir={tiny_data_dir}", "--attribute=all")
    assert "| mean |" in evaluate.stdout


def test_commands_fail_with_one_line_errors(tiny_data_dir, tmp_path):
    proc = run_module("relattr_tf.train", *smoke_args(str(tmp_path / "none"),
                                                      str(tmp_path / "m"), "--nomake_data"),
                      check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("relattr_tf.train: ")
    assert "make_synthetic" in proc.stderr
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, str(tmp_path / "m"),
                                                      "--attribute=shiny"), check=False)
    assert "unknown attribute 'shiny'; known: brightness, tilt" in proc.stderr
    proc = run_module("relattr_tf.evaluate", f"--model_dir={tmp_path / 'nothing'}", check=False)
    assert proc.returncode != 0 and "no trained model here" in proc.stderr


@pytest.mark.slow
def test_quickstart_recipe_learns_brightness(tmp_path):
    """The quickstart's model and recipe on a brightness-only benchmark (about 5 minutes)."""
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "model")
    run_module("relattr_tf.train", "--flagfile=configs/quickstart.flags",
               f"--data_dir={data_dir}", f"--model_dir={model_dir}",
               "--make_data_args=--attributes=brightness", timeout=1200)
    result = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert result["accuracy"] > 0.95 and result["truth_accuracy"] > 0.93
