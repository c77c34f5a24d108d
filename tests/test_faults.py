"""Bad input and bad settings: one-line errors, determinism, safe loading."""
import json
import glob
import os
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from relattr_tf import models  # noqa: F401  registers the custom layers
from tests.cli import ROOT, run_module, smoke_args


def _last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


def test_missing_flagfile_and_unknown_flag_are_reported(tiny_data_dir, tmp_path):
    proc = run_module("relattr_tf.train", "--flagfile=configs/nope.flags", check=False)
    assert proc.returncode != 0 and "nope.flags" in proc.stderr
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, str(tmp_path / "m"),
                                                      "--learning_rate=1"), check=False)
    assert proc.returncode != 0 and "Unknown command line flag 'learning_rate'" in proc.stderr
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, str(tmp_path / "m"),
                                                      "--model=resnet"), check=False)
    assert proc.returncode != 0 and "--model" in proc.stderr and "dacrl" in proc.stderr


@pytest.mark.parametrize("flag,message", [
    ("--image_size=16", "relattr_tf.train: flag --image_size=16: 16 is not"),
    ("--epochs=0", "relattr_tf.train: flag --epochs=0: 0 is not a positive integer"),
    ("--train_split=train:x", "--train_split=train:x: the weight after ':' must be a number"),
    ("--batch_size=7", "--batch_size=7 is the global batch: it must divide evenly over the 2"),
])
def test_impossible_settings_are_one_line_errors(tiny_data_dir, tmp_path, flag, message):
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, str(tmp_path / "m"), flag,
                                                      "--cpu_devices=2", "--strategy=mirrored"),
                      check=False)
    assert proc.returncode != 0 and message in _last_line(proc)


def test_schema_version_mismatch_is_a_one_line_error(tiny_data_dir, tmp_path):
    import shutil
    copy = tmp_path / "old"
    shutil.copytree(tiny_data_dir, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["schema_version"] = 0
    (copy / "metadata.json").write_text(json.dumps(meta))
    proc = run_module("relattr_tf.train", *smoke_args(str(copy), str(tmp_path / "m")),
                      check=False)
    assert proc.returncode != 0
    assert "metadata.json: schema version 0, this relattr_tf reads version 2" in _last_line(proc)
    assert "rebuild it with: python -m beam_jobs.make_synthetic" in _last_line(proc)


def test_corrupt_shard_during_training_names_the_file(tiny_data_dir, tmp_path):
    import shutil
    copy = tmp_path / "corrupt"
    shutil.copytree(tiny_data_dir, copy)
    shard = sorted((copy / "pairs" / "brightness").glob("train-*"))[0]
    shard.write_bytes(shard.read_bytes()[:200])
    proc = run_module("relattr_tf.train", *smoke_args(str(copy), str(tmp_path / "m")),
                      check=False, timeout=300)
    assert proc.returncode != 0
    assert f"{shard}: corrupt or truncated shard" in _last_line(proc)


def test_deterministic_runs_give_identical_models_and_metrics(tiny_data_dir, tmp_path):
    outputs = []
    for run in range(2):
        model_dir = str(tmp_path / f"run{run}")
        run_module("relattr_tf.train", *smoke_args(tiny_data_dir, model_dir, "--deterministic",
                                                   "--seed=5", "--tensorboard_images=0"))
        network = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
        outputs.append((json.load(open(os.path.join(model_dir, "eval_test.json"))),
                        network.get_weights()))
    same = lambda result: {k: v for k, v in result.items() if k not in ("data_dir", "seconds")}
    assert same(outputs[0][0]) == same(outputs[1][0])
    for a, b in zip(outputs[0][1], outputs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_train_command_imports_tensorflow_only_after_reading_its_flags():
    # --deterministic switches TensorFlow's oneDNN kernels off, which works only before import.
    code = "import sys, relattr_tf.train; print('tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_safe_loading_refuses_code_in_a_tampered_model_file(tmp_path):
    network = models.build_model("ranknet", image_size=32, width=0.125).network
    path = str(tmp_path / "model.keras")
    network.save(path)
    keras.saving.load_model(path, safe_mode=True)  # ours: only registered layers, no code
    inputs = keras.Input((2,))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    evil_path = str(tmp_path / "evil.keras")
    evil.save(evil_path)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(evil_path, safe_mode=True)
    with zipfile.ZipFile(path) as z:
        assert "lambda" not in z.read("config.json").decode().lower()


def test_every_config_file_parses_into_a_config_with_its_command():
    """Each flagfile parses with the flags of every command its header runs it with."""
    by_command = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.flags"))):
        header = open(path, encoding="utf-8").read()
        name = os.path.relpath(path, ROOT)
        segments = header.split("python -m ")[1:]  # each command line, continuations included
        commands = {seg.split()[0] for seg in segments
                    if seg.startswith("relattr_tf.") and re.search(rf"--flagfile={name}\b", seg)}
        assert commands, f"{path}: its header names no command that reads it"
        for command in commands:
            by_command.setdefault(command, []).append(name)
    assert {"relattr_tf.train", "relattr_tf.ablation", "relattr_tf.attic_table"} <= set(
        by_command)
    for command, paths in by_command.items():
        code = ("import sys\n"
                "from absl import flags\n"
                f"import {command}\n"
                "from relattr_tf import config_flags\n"
                "for path in sys.argv[1:]:\n"
                "    flags.FLAGS.unparse_flags()\n"
                "    flags.FLAGS(['prog', f'--flagfile={path}'])\n"
                "    print(path, config_flags.from_flags().model  # a command with a Config\n"
                "          if 'model' in flags.FLAGS else '-')\n")
        proc = subprocess.run([sys.executable, "-c", code, *paths], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{command}: {proc.stderr[-2000:]}"
        assert proc.stdout.split()[::2] == paths
