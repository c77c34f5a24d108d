"""Training machinery: loss scaling across replicas, schedules, evaluation rules, export,
resume after kill -9, non-finite losses."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from relattr_tf import config as config_lib
from relattr_tf.artifacts import run_config
from relattr_tf.evaluation import pairs as evaluation, report
from relattr_tf import models  # noqa: F401  registers the custom layers for safe loading
from relattr_tf.training import callbacks, optimizers, run
from tests.cli import ROOT, run_module, smoke_args
from tests.test_core import event_values


def _replica_check(*flags):
    proc = run_module("tests.replica_equivalence", *flags, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_and_two_replicas_take_the_same_step():
    result = _replica_check()
    assert result["replicas"] == 2
    assert result["step_one"] > 1e-4  # the step moved the weights
    assert result["max_weight_diff"] < 1e-6 * max(1.0, result["step_one"] * 1e3)
    assert result["loss_one"] == pytest.approx(result["loss_two"], rel=1e-5)


@pytest.mark.parametrize("flags", [
    (),
    ('--set=first_heads=["subject_cell"]', "--set=first_heads_steps=1"),
    # The two pulls' norms are the global batch's: summed over the replicas first.
    ('--set=balanced_heads=["subject_cell","light_side"]',),
    # Measured at step 0, held at step 1 (the cond's other branch), measured at step 2.
    ('--set=balanced_heads=["each"]', "--set=balance_every=2", "--steps=3"),
], ids=["plain", "first_heads", "balanced_heads", "balanced_each"])
def test_pretraining_takes_the_same_step_on_one_and_two_replicas(flags):
    result = _replica_check("--model=vgg16_scenes", *flags)
    assert result["step_one"] > 1e-4
    assert result["max_weight_diff"] < 1e-6 * max(1.0, result["step_one"] * 1e3)
    assert result["loss_one"] == pytest.approx(result["loss_two"], rel=1e-5)


def test_a_hand_written_mean_loss_would_double_the_step_on_two_replicas():
    result = _replica_check("--naive")  # shows the equivalence test can fail
    assert result["step_two"] == pytest.approx(2 * result["step_one"], rel=1e-3)


def test_mixed_float16_loss_scale_takes_the_same_step_on_one_and_two_replicas():
    result = _replica_check("--mixed_float16")
    assert result["step_one"] > 1e-4
    assert result["max_weight_diff"] < 1e-3 * result["step_one"]


def test_step_schedule_drops_at_the_start_of_the_given_epochs():
    schedule = optimizers.step_schedule(1.0, (1, 2), 10.0, steps_per_epoch=4)
    rates = [float(schedule(step)) for step in range(12)]
    np.testing.assert_allclose(rates, [1] * 4 + [0.1] * 4 + [0.01] * 4, rtol=1e-6)
    assert float(optimizers.step_schedule(0.5, (), 10.0, 4)(100)) == 0.5


def test_a_frozen_group_waits_then_warms_up_on_top_of_its_step_schedule():
    inner = optimizers.step_schedule(1.0, (2,), 10.0, steps_per_epoch=4)
    schedule = optimizers.ramped(inner, start=4, ramp=2)  # frozen for epoch 1, 2 warm-up steps
    rates = [float(schedule(step)) for step in range(12)]
    np.testing.assert_allclose(rates, [0] * 4 + [0.5, 1, 1, 1] + [0.1] * 4, rtol=1e-6)
    warm = optimizers.ramped(optimizers.ConstantSchedule(2.0), ramp=4)
    np.testing.assert_allclose([float(warm(s)) for s in range(6)], [0.5, 1, 1.5, 2, 2, 2])
    assert optimizers.ramped(inner) is inner
    again = optimizers.Ramped.from_config(schedule.get_config())  # as a saved optimizer holds it
    np.testing.assert_allclose([float(again(s)) for s in range(12)], rates, rtol=1e-6)


def test_the_ranker_freezes_only_its_trunk_for_the_asked_epochs(smoke_run):
    from relattr_tf.training import task as task_lib
    config = run_config.load_run_config(smoke_run[0]).with_values(
        trunk_frozen_epochs=2, warmup_steps=3, lr_drop_epochs=())
    task = task_lib.make_task(config)
    trunk = task.learning_rate_schedule("trunk", 1e-3, steps_per_epoch=5)
    head = task.learning_rate_schedule("head", 1e-3, steps_per_epoch=5)
    assert float(trunk(9)) == 0.0 and float(trunk(10)) == pytest.approx(1e-3 / 3)
    assert float(head(0)) == pytest.approx(1e-3 / 3) and float(head(2)) == pytest.approx(1e-3)


def test_accuracy_excludes_equal_pairs_and_counts_p_one_half_as_wrong():
    targets = [1.0, 0.0, 1.0, 0.5, 0.0]
    p = [0.9, 0.2, 0.5, 0.99, 0.5]
    accuracy, used, excluded = evaluation.pair_accuracy(targets, p)
    assert (used, excluded) == (4, 1) and accuracy == pytest.approx(0.5)


def test_results_table_has_rows_and_mean(tmp_path):
    rows = [dict(attribute="open", accuracy=0.9, truth_accuracy=0.95),
            dict(attribute="pointy", accuracy=0.8, truth_accuracy=0.85)]
    table = report.write_table(rows, str(tmp_path / "results_test"))
    assert "| mean | 85.00 | 90.00 |" in table
    csv = (tmp_path / "results_test.csv").read_text().splitlines()
    assert csv[0] == "attribute,accuracy,truth_accuracy" and csv[-1] == "mean,85.00,90.00"


@pytest.fixture()
def smoke_run(smoke_model):
    return smoke_model


def test_smoke_training_exports_a_model_that_loads_without_relattr_tf(smoke_run, tiny_data_dir):
    model_dir, stdout = smoke_run
    assert "epoch 2/2" in stdout and "brightness / test: accuracy" in stdout
    result = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert result["pairs_used"] > 0 and 0 <= result["accuracy"] <= 1
    script = ("import sys, numpy as np, tensorflow as tf\n"
              "assert 'relattr_tf' not in sys.modules\n"
              f"m = tf.saved_model.load({os.path.join(model_dir, 'export')!r})\n"
              "x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype('float32')\n"
              "p = m.pair(image_a=x, image_b=x[::-1])['p'].numpy()\n"
              "s = m.signatures['serving_default'](image_a=x, image_b=x[::-1])['p'].numpy()\n"
              "np.save(sys.argv[1], p); assert np.allclose(p, s)\n")
    out = os.path.join(model_dir, "p.npy")
    subprocess.run([sys.executable, "-c", script, out], check=True, cwd="/",
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    network = keras.saving.load_model(os.path.join(model_dir, "model.keras"), safe_mode=True)
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(network((x, x[::-1]))), np.load(out), atol=1e-5)


def test_tensorboard_has_every_epoch_losses_learning_rates_pairs_and_hparams(smoke_run):
    model_dir, _ = smoke_run
    log_dir = os.path.join(model_dir, "tensorboard")
    values = event_values(log_dir)
    for key in [("train", "epoch_loss"), ("train", "epoch_accuracy"),
                ("train", "epoch_lr_trunk"), ("train", "epoch_lr_head"),
                ("validation", "epoch_loss"), ("validation", "epoch_accuracy")]:
        assert values[key] == [0, 1], key  # one value for each of the 2 epochs
    tags = {}
    for root, _, files in os.walk(log_dir):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    tags.setdefault(value.tag, set()).add(event.step)
    assert {"pairs", "pairs_p", "_hparams_/session_start_info"} <= set(tags)
    assert tags["pairs"] == {1, 2} and tags["pairs_p"] == {1, 2}  # every epoch


def test_evaluation_from_the_image_table_matches_the_pair_by_pair_path(smoke_run,
                                                                       tiny_data_dir):
    model_dir, _ = smoke_run
    for split in ("test", "test_fine"):
        table = evaluation.evaluate_split(model_dir, tiny_data_dir, "brightness", split)
        pairwise = evaluation.evaluate_split(model_dir, tiny_data_dir, "brightness", split,
                                             method="pairwise")
        assert table["method"] == "features" and pairwise["method"] == "pairwise"
        # Both paths score each pair in both orders too: DACRL's symmetrised accuracy.
        for key in ("accuracy", "truth_accuracy", "pairs_used", "pairs_excluded_equal",
                    "symmetrised_accuracy", "symmetrised_truth_accuracy"):
            assert table[key] == pairwise[key], (split, key)


def test_validation_reads_held_out_training_pairs_and_never_an_evaluation_split(smoke_run,
                                                                               tiny_data_dir):
    from relattr_tf.data import schema
    from relattr_tf.training import task as task_lib
    model_dir, stdout = smoke_run
    config = run_config.load_run_config(model_dir)
    assert config.family.val_split == "" and config.family.val_fraction == 0.1
    meta = schema.read_metadata(tiny_data_dir)
    task = task_lib.make_task(config.with_values(val_split="test"))
    with pytest.raises(config_lib.ConfigError, match="--val_split=test: an evaluation split; "):
        task.check_data(meta)
    task = task_lib.make_task(config.with_values(val_fraction=0.01))  # 40 pairs: none held out
    with pytest.raises(config_lib.ConfigError, match="--val_fraction=0.01: no pair of "):
        task.datasets(meta, 0)


def test_the_stall_check_reports_every_run_and_fires_on_one_built_to_stall(smoke_run,
                                                                           tiny_data_dir,
                                                                           tmp_path):
    from relattr_tf.training import stall
    model_dir, stdout = smoke_run
    check = json.load(open(os.path.join(model_dir, "summary.json")))["training_check"]
    assert "stall check: training loss " in stdout and "% of the cross-image units" in stdout
    assert 0 <= check["active_cross_units"] <= 1 and check["p_std"] >= 0
    assert check["stalled"] == stall.stalled(check["final_loss"])
    assert stall.stalled(0.6951) and not stall.stalled(0.6851) and not stall.stalled(None)
    # Nothing can learn at a zero rate: p stays near 0.5 and the loss at ln 2.
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, str(tmp_path / "stall"),
                                                      "--trunk_lr=0", "--head_lr=0",
                                                      "--epochs=1", "--tensorboard_images=0"))
    line = next(l for l in proc.stdout.splitlines() if l.startswith("stall check: "))
    assert "WARNING: the training loss ended within 0.005 of ln 2" in line, line


def test_a_finished_run_is_reused_only_with_the_same_recipe(smoke_run, capsys):
    model_dir, _ = smoke_run
    config = run_config.load_run_config(model_dir)
    assert run.train_or_reuse(config, model_dir)["test"]["accuracy"] >= 0
    assert "training" not in capsys.readouterr().out  # reused as it is
    with pytest.raises(config_lib.ConfigError, match="finished training with other settings "
                                                     r"\(head_lr: 0.001 -> 0.5\)"):
        run.train_or_reuse(config.with_values(head_lr=0.5), model_dir)


def test_a_run_stopped_on_purpose_counts_as_finished(smoke_run, tmp_path):
    """A checkpoint that says a callback stopped training (GoalCurve: goals met) before
    --epochs: a rerun with another recipe is refused, as for a run that ran every epoch."""
    import shutil
    model_dir = str(shutil.copytree(smoke_run[0], tmp_path / "stopped"))
    config = run_config.load_run_config(model_dir)
    state = os.path.join(model_dir, "checkpoints", callbacks.CHECKPOINT_STATE)
    saved = json.load(open(state))
    json.dump(dict(saved, epoch=1, stopped=True), open(state, "w"))
    assert callbacks.checkpoint_epoch(os.path.dirname(state)) < config.train.epochs
    with pytest.raises(config_lib.ConfigError, match="finished training with other settings"):
        run.check_resumable(config.with_values(head_lr=0.5), model_dir)
    json.dump(dict(saved, epoch=1), open(state, "w"))
    run.check_resumable(config.with_values(head_lr=0.5), model_dir)  # not stopped: goes on


def test_training_mixes_a_split_appended_to_the_data_directory(tiny_data_dir, tmp_path):
    import shutil
    from relattr_tf.data import pipeline, schema, writer
    data_dir = str(tmp_path / "grown")
    shutil.copytree(tiny_data_dir, data_dir)
    store = pipeline.ImageStore(data_dir, ["test"], 32)
    images = [dict(image=tf.io.encode_png(store.images([k])[0]).numpy(),
                   image_id=f"round1-{k}", source="generated") for k in range(8)]
    pairs = [dict(id_a=f"round1-{k}", id_b=f"round1-{(k + 3) % 8}", attribute="brightness",
                  split="round-01", target=float(k % 2), source="crowd") for k in range(8)]
    writer.add_to_data_dir(data_dir, table="round-01", images=images, pairs=pairs,
                           command="test")
    assert schema.read_metadata(data_dir)["splits"]["brightness"]["train"]["pairs"] > 0
    model_dir = str(tmp_path / "mixed")
    proc = run_module("relattr_tf.train", *smoke_args(data_dir, model_dir, "--epochs=1",
                                                      "--train_split=train:1,round-01:0.5",
                                                      "--tensorboard_images=0"))
    assert "on brightness/train:1,round-01:0.5" in proc.stdout
    assert "brightness / test: accuracy" in proc.stdout


def test_ranknet_export_also_scores_single_images(tiny_data_dir, tmp_path):
    model_dir = str(tmp_path / "ranknet")
    run_module("relattr_tf.train", *smoke_args(tiny_data_dir, model_dir, "--model=ranknet",
                                               "--epochs=1"))
    table = evaluation.evaluate_split(model_dir, tiny_data_dir, "brightness", "test_fine")
    pairwise = evaluation.evaluate_split(model_dir, tiny_data_dir, "brightness", "test_fine",
                                         method="pairwise")
    assert table["method"] == "score"
    assert (table["accuracy"], table["truth_accuracy"]) == (pairwise["accuracy"],
                                                            pairwise["truth_accuracy"])
    # A score model is antisymmetric: both orders averaged is the single order.
    assert table["symmetrised_accuracy"] == table["accuracy"]
    exported = tf.saved_model.load(os.path.join(model_dir, "export"))
    x = np.random.default_rng(1).uniform(size=(4, 32, 32, 3)).astype("float32")
    score = exported.score(image=x)["score"].numpy().ravel()
    p = exported.pair(image_a=x, image_b=x[::-1])["p"].numpy().ravel()
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(score - score[::-1]))), atol=1e-5)


def _optimizer_steps(model_dir):
    return json.load(open(os.path.join(model_dir, "summary.json")))["optimizer_steps"]


def _train_until_killed(args, after_line, delay, temp_dir):
    """Starts training, waits for `after_line` on stdout, waits `delay` s, then kill -9."""
    # A killed process leaves its temporary files (TensorFlow's autograph sources) behind.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", TMPDIR=temp_dir)
    proc = subprocess.Popen([sys.executable, "-m", "relattr_tf.train", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, deadline = "", time.time() + 240
    while after_line not in seen and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert after_line in seen, seen
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return seen


def test_resume_after_kill_minus_nine_at_random_points_ends_at_the_same_step(tiny_data_dir,
                                                                             tmp_path):
    model_dir = str(tmp_path / "killed")
    args = smoke_args(tiny_data_dir, model_dir, "--epochs=3", "--steps_per_epoch=30",
                      "--tensorboard_images=0")
    rng = np.random.default_rng()
    delays = rng.uniform(0.0, 1.5, size=2)  # anywhere in the next epoch or its checkpoint write
    _train_until_killed(args, "epoch 1/3", delays[0], str(tmp_path))
    _train_until_killed(args, "/3 (", delays[1], str(tmp_path))  # the next epoch line
    assert not os.path.exists(os.path.join(model_dir, "summary.json"))
    state = os.path.join(model_dir, "checkpoints", "checkpoint.json")
    saved = json.load(open(state))["epoch"] if os.path.exists(state) else 0
    resumed = run_module("relattr_tf.train", *args)
    assert (f"resuming after epoch {saved}" in resumed.stdout) == (saved > 0), delays
    for epoch in range(1, 4):  # exactly the epochs after the checkpoint run again
        assert (f"epoch {epoch}/3" in resumed.stdout) == (epoch > saved), (delays, saved)
    assert _optimizer_steps(model_dir) == 90


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny_data_dir,
                                                                             tmp_path):
    model_dir = str(tmp_path / "nan")
    args = smoke_args(tiny_data_dir, model_dir, "--epochs=1", "--tensorboard_images=0",
                      "--lr_drop_epochs=", "--optimizer=sgd", "--trunk_lr=0.01", "--head_lr=0.01")
    run_module("relattr_tf.train", *args)
    backup = os.path.join(model_dir, "checkpoints")
    before = sorted(os.listdir(backup))
    weights = keras.saving.load_model(os.path.join(model_dir, "model.keras")).get_weights()
    # L2 decay keeps every gradient non-zero even once p sits at its clip bound (where the
    # loss gradient vanishes), so the weights surely overflow.
    proc = run_module("relattr_tf.train", *args, "--epochs=3", "--trunk_lr=1e38",
                      "--head_lr=1e38", "--weight_decay=0.1", check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert re.search(r"relattr_tf.train: loss became (nan|inf)", last), last
    assert "last good checkpoint" in last
    assert sorted(os.listdir(backup)) == before
    assert all(np.all(np.isfinite(w)) for w in weights)
    resumed = run_module("relattr_tf.train", *args, "--epochs=2")  # a sane rate again
    assert "epoch 1/2" not in resumed.stdout and "epoch 2/2" in resumed.stdout


@pytest.mark.slow  # kill -9 resumes in the default run; the stream in test_pipeline
def test_a_resumed_run_continues_the_data_stream_and_ends_where_one_run_ends(tiny_data_dir,
                                                                            tmp_path):
    args = lambda d, *extra: smoke_args(tiny_data_dir, str(tmp_path / d), "--deterministic",
                                        "--tensorboard_images=0", *extra)
    run_module("relattr_tf.train", *args("straight", "--epochs=2"))
    run_module("relattr_tf.train", *args("resumed", "--epochs=1"))
    resumed = run_module("relattr_tf.train", *args("resumed", "--epochs=2"))
    assert "resuming after epoch 1" in resumed.stdout
    weights = [keras.saving.load_model(str(tmp_path / d / "model.keras")).get_weights()
               for d in ("straight", "resumed")]
    for a, b in zip(*weights):  # epoch 2 saw the batches a single run sees, not epoch 1's
        np.testing.assert_array_equal(a, b)


def test_resuming_with_another_network_is_refused(smoke_run, tiny_data_dir):
    model_dir, _ = smoke_run
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, model_dir, "--width=0.25"),
                      check=False)
    assert proc.returncode != 0
    assert "holds another network (width: 0.125 -> 0.25)" in proc.stderr
