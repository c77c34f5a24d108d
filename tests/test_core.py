"""The training core on its own: a task that is not a pair ranker, parameter groups, weight
decay, loss scaling, TensorBoard's epoch summaries, the config definition and its flags."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from relattr_tf import config as config_lib
from relattr_tf.artifacts import run_config
from relattr_tf import config_flags
from relattr_tf import models
from relattr_tf.training import run, task
from tests import autoencoder_task


def event_values(log_dir):
    """{(run, tag): [steps]} of every scalar in a TensorBoard log directory, read as
    TensorBoard reads it."""
    from tensorboard.backend.event_processing import event_multiplexer
    multiplexer = event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(log_dir)
    multiplexer.Reload()
    out = {}
    for run_name, tags in multiplexer.Runs().items():
        for tag in tags.get("tensors", []):
            out[(run_name, tag)] = [e.step for e in multiplexer.Tensors(run_name, tag)]
    return out


def test_a_task_that_is_not_a_ranker_trains_resumes_and_logs_every_epoch(tiny_data_dir,
                                                                         tmp_path):
    model_dir = str(tmp_path / "autoencoder")
    # 3 steps per epoch, batch summaries every 2: epochs end off the update frequency.
    config = autoencoder_task.config(tiny_data_dir, update_freq=2)
    results = run.train_and_evaluate(config, model_dir)
    assert results["reconstruction"]["reconstruction_mse"] < 0.2
    summary = json.load(open(os.path.join(model_dir, "summary.json")))
    assert summary["optimizer_steps"] == 6
    values = event_values(os.path.join(model_dir, "tensorboard"))
    for key in [("train", "epoch_loss"), ("validation", "epoch_loss"),
                ("train", "epoch_lr_encoder"), ("train", "epoch_lr_decoder")]:
        assert values[key] == [0, 1], key  # one value per epoch
    more = run.train_and_evaluate(config.with_values(epochs=3), model_dir)
    assert "reconstruction" in more
    assert json.load(open(os.path.join(model_dir, "summary.json")))["optimizer_steps"] == 9
    changes = json.load(open(os.path.join(model_dir, run.CHANGES_FILE)))
    assert changes[-1]["changes"] == {"epochs": [2, 3]}
    with pytest.raises(config_lib.ConfigError, match="another network .code_channels: 4 -> 8"):
        run.train_and_evaluate(config.with_values(code_channels=8), model_dir)


def test_every_weight_is_in_exactly_one_parameter_group():
    parts = models.build_model("dacrl", image_size=32, width=0.125, cross_filters=8,
                               head_units=8)
    groups = parts.group_variables()
    assert set(groups) == {"trunk", "head"}
    assert sum(len(v) for v in groups.values()) == len(parts.network.trainable_variables)
    assert {id(v) for v in groups["trunk"]} == {id(v) for v in parts.trunk.trainable_variables}
    parts.groups["head"].append(parts.trunk)
    with pytest.raises(ValueError, match="in parameter groups trunk and head"):
        parts.group_variables()
    parts.groups = {"head": [parts.comparator]}
    with pytest.raises(ValueError, match="weights in no parameter group"):
        parts.group_variables()


class _Linear(task.TaskModel):
    """y = Dense(x); loss = scale * sum(y), for checking the update rules."""

    def __init__(self, loss_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="ones")
        self.loss_factor = loss_factor

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = self.loss_factor * tf.reduce_sum(tf.cast(self.dense(data), tf.float32))
        self.apply_gradients_of(tape, loss)
        return {"loss": loss}


def _one_step(model, optimizer, weight_decay, x):
    model(x)
    model.compile({"all": optimizer}, {"all": model.trainable_variables},
                  weight_decay=weight_decay)
    model.fit(tf.data.Dataset.from_tensors(x), epochs=1, verbose=0)
    return [np.asarray(w) for w in model.dense.get_weights()]


def test_l2_weight_decay_is_added_to_the_gradient_of_kernels_only():
    x = np.zeros((1, 3), np.float32)  # zero data gradient for the kernel, ones for the bias
    kernel, bias = _one_step(_Linear(loss_factor=0.0), keras.optimizers.RMSprop(0.01, rho=0.9),
                             0.5, x)
    reference = keras.Variable(np.ones((3, 2), np.float32))
    expected = keras.optimizers.RMSprop(0.01, rho=0.9)
    expected.apply_gradients([(tf.fill((3, 2), 0.5), reference)])  # g = wd * w
    np.testing.assert_allclose(kernel, np.asarray(reference), rtol=1e-6)
    np.testing.assert_allclose(bias, 1.0)  # biases are not decayed
    # Keras' own (decoupled) decay at this rate moves the kernel far less: why it is not used.
    decoupled, _ = _one_step(_Linear(loss_factor=0.0), keras.optimizers.RMSprop(
        0.01, rho=0.9, weight_decay=0.5), 0.0, x)
    assert abs(1 - decoupled[0, 0]) < 0.2 * abs(1 - kernel[0, 0])


def test_mixed_float16_gradients_that_underflow_are_rescued_by_the_loss_scale():
    x = np.full((4, 3), 0.5, np.float32)
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        scaled = _Linear(loss_factor=1e-9)
        unscaled = _Linear(loss_factor=1e-9)
        unscaled.loss_scale = None
        moved = [_one_step(m, keras.optimizers.SGD(1e4), 0.0, x)[0] for m in (scaled, unscaled)]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert scaled.loss_scale is not None
    assert np.all(moved[0] < 1.0)  # 1e4 * 2e-9 = 2e-5 per weight: it moved
    np.testing.assert_array_equal(moved[1], 1.0)  # float16 gradients flushed to zero


def test_loss_scale_halves_and_skips_on_overflow_and_grows_after_good_steps():
    from relattr_tf.training.loss_scale import LossScale
    scale = LossScale(initial_scale=8.0, growth_interval=2)
    variable = keras.Variable(1.0)
    optimizer = keras.optimizers.SGD(1.0)
    optimizer.build([variable])
    scale.apply([(optimizer, [tf.constant(np.inf)], [variable])])
    assert float(scale.scale) == 4.0 and float(variable) == 1.0  # skipped
    for _ in range(2):
        scale.apply([(optimizer, [tf.constant(0.25)], [variable])])
    assert float(scale.scale) == 8.0 and float(variable) == pytest.approx(0.5)


def test_unique_initial_weights_for_every_new_layer():
    parts = models.build_model("dacrl", image_size=32, width=0.125, cross_filters=16,
                               head_units=16, reduction=1, seed=0)
    fc1 = parts.comparator.get_layer("attention_fc1").kernel.numpy()
    fc2 = parts.comparator.get_layer("attention_fc2").kernel.numpy()
    assert fc1.shape == fc2.shape  # same shape, so a shared integer seed made them identical
    assert not np.allclose(fc1, fc2)
    again = models.build_model("dacrl", image_size=32, width=0.125, cross_filters=16,
                               head_units=16, reduction=1, seed=0)
    np.testing.assert_array_equal(fc1, again.comparator.get_layer("attention_fc1").kernel)


def _parse(argv):
    fv = flags.FlagValues()
    config_flags.define_flags(fv)
    fv(["prog"] + argv)
    return config_flags.from_flags(fv)


def test_flags_come_from_the_config_definition_with_ranges_and_family_sections():
    config = _parse(["--model=ranknet", "--width=0.5", "--train_split=train:1,extra:0.5",
                     "--epochs=3"])
    assert config.family.width == 0.5 and config.train.epochs == 3
    assert config.family.train_weights() == {"train": 1.0, "extra": 0.5}
    assert "cross_filters" not in config.values()  # a DACRL setting, meaningless for RankNet
    with pytest.raises(flags.IllegalFlagValueError, match="epochs"):
        _parse(["--epochs=0"])
    with pytest.raises(flags.IllegalFlagValueError, match="augment"):
        _parse(["--augment=flip,rotate"])
    with pytest.raises(config_lib.ConfigError, match="--code_channels is a setting of the "
                                                     "autoencoder models, not of --model=dacrl"):
        _parse(["--code_channels=8"])
    saved = run_config.from_json(config.to_json())
    assert saved == config


def test_config_differences_separate_network_recipe_and_display():
    config = _parse(["--model=dacrl"])
    changed = config.with_values(cross_filters=64, head_lr=1.0, progress="bar")
    architecture, compared, display = run_config.differences(changed, config)
    assert list(architecture) == ["cross_filters"]
    assert list(compared) == ["head_lr"] and list(display) == ["progress"]


def test_the_one_mean_std_rule_and_the_intervals():
    from relattr_tf.evaluation import report
    assert report.mean_std([0.5, 0.7]) == ("60.00 ± 14.14", 60.0, pytest.approx(14.1421, 1e-4))
    assert report.mean_std([0.5, float("nan"), None])[0] == "50.00"  # unknowns left out
    assert report.mean_std([])[0] == "n/a"
    low, high = report.seed_interval([0.5, 0.7])  # t(0.975, 1) = 12.706, sem 0.1
    assert (low, high) == (pytest.approx(0.6 - 1.27062, 1e-4), pytest.approx(0.6 + 1.27062, 1e-4))
    assert np.isnan(report.seed_interval([0.5])[0])
    low, high = report.accuracy_interval(0.9, 300)  # Wilson: 0.861 to 0.929
    assert low == pytest.approx(0.8608, abs=1e-4) and high == pytest.approx(0.9291, abs=1e-4)


def test_a_ledger_skips_a_finished_cell_only_for_the_same_recipe_inputs_and_data(tmp_path):
    from relattr_tf.evaluation.ledger import Ledger, record_of
    ledger = Ledger(str(tmp_path), "study")
    cell = dict(pair_set="fine", attribute="size", model="dacrl", seed=1)
    config = config_lib.Config(model="dacrl")
    same = dict(settings={"eval_split": "test_fine"}, inputs={"backbone_weights_sha256": "a"},
                data_sha256="d")
    assert ledger.finished(cell, config, **same) is None
    ledger.write(cell, record_of("ablation", "study", cell, "cmd", config, {"accuracy": 0.7},
                                 12.0, "data", "d", same["inputs"], same["settings"]))
    assert os.listdir(tmp_path / "study") == ["pair_set-fine__attribute-size__model-dacrl__"
                                              "seed-1.json"]
    assert ledger.finished(cell, config, **same)["metrics"] == {"accuracy": 0.7}
    for changed, what in ((dict(same, inputs={"backbone_weights_sha256": "b"}),
                           "backbone_weights_sha256"),
                          (dict(same, data_sha256="e"), "the data in data"),
                          (dict(same, settings={"eval_split": "test"}), "eval_split")):
        with pytest.raises(config_lib.ConfigError, match=f"another recipe .{what}"):
            ledger.finished(cell, config, **changed)
    with pytest.raises(config_lib.ConfigError, match=r"another recipe \(head_lr changed\)"):
        ledger.finished(cell, config.with_values(head_lr=0.1), **same)
    assert [r["cell"] for r in ledger.records()] == [cell]
    long = dict(cell, first_heads="+".join(["main_distractor_colour"] * 20))
    other = dict(long, first_heads=long["first_heads"] + "+x")
    names = {os.path.basename(ledger.path(c)) for c in (long, other)}
    assert len(names) == 2 and all(len(n) <= 205 for n in names)  # unique and short enough
    # A record written before a setting existed matches while that setting holds its default.
    path = ledger.path(cell)
    record = json.load(open(path))
    del record["config"]["head_lr"]
    json.dump(record, open(path, "w"))
    assert ledger.finished(cell, config, **same)["metrics"] == {"accuracy": 0.7}
    with pytest.raises(config_lib.ConfigError, match=r"another recipe \(head_lr changed\)"):
        ledger.finished(cell, config.with_values(head_lr=0.1), **same)
