"""The oracle generator: the benchmark's renderer in TensorFlow. Its pictures' measured
strengths follow the requested ones, its gradient reaches every strength, and its command
leaves a generator artifact marked "oracle" that loads as a learned one does."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.data.synthetic import render
from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES
from relattr_tf.data.synthetic.measure import measure
from relattr_tf.models import oracle_renderer
from relattr_tf.training import oracle_calibration


@pytest.fixture(scope="module")
def oracle():
    return oracle_calibration.calibrated_oracle(64, count=600, seed=0)


def test_the_measured_strengths_follow_the_requested_ones(oracle):
    decoder, statistics, _ = oracle
    mean, std = np.asarray(statistics["mean"]), np.asarray(statistics["std"])
    low = np.maximum(statistics["min"], mean - 1.65 * std)
    high = np.minimum(statistics["max"], mean + 1.65 * std)
    rng = np.random.default_rng(3)
    for k, name in enumerate(ATTRIBUTE_NAMES):
        y = np.repeat(np.clip(rng.normal(mean, std, (4, 8)), low, high), 8, axis=0)
        y[:, k] = np.tile(np.linspace(low[k], high[k], 8), 4)
        z = np.repeat(rng.normal(size=(4, oracle_renderer.Z_SIZE)), 8, axis=0)
        measured = np.array([measure(p)[k] for p in oracle_calibration.draw(decoder, y, z)])
        within = [stats.spearmanr(y[s:s + 8, k], measured[s:s + 8]).statistic
                  for s in range(0, 32, 8) if np.isfinite(measured[s:s + 8]).all()]
        assert within and np.mean(within) >= 0.95, (name, within)


def test_the_gradient_reaches_every_strength(oracle):
    decoder, statistics, _ = oracle
    y = tf.Variable(np.tile(np.asarray(statistics["mean"], np.float32), (4, 1)))
    z = tf.constant(np.random.default_rng(0).normal(size=(4, oracle_renderer.Z_SIZE)),
                    tf.float32)
    weights = tf.constant(np.random.default_rng(1).normal(size=(4, 64, 64, 3)), tf.float32)
    with tf.GradientTape() as tape:
        image, _ = decoder([y, z])
        score = tf.reduce_sum(image * weights)
    gradient = tape.gradient(score, y).numpy()
    assert np.isfinite(gradient).all()
    assert (np.abs(gradient).max(axis=0) > 0).all(), dict(zip(ATTRIBUTE_NAMES, gradient[0]))


def test_the_oracle_draws_the_benchmarks_scenes(oracle):
    """Like the numpy renderer's: a green subject the measurement finds, distractors, and the
    same spread of picture statistics."""
    decoder, statistics, _ = oracle
    rng = np.random.default_rng(5)
    latents = rng.uniform(size=(64, 8))
    numpy_pictures = [render.to_uint8(render.render(v, np.random.default_rng(i), 64))
                      for i, v in enumerate(latents)]
    y = np.stack([measure(p) for p in numpy_pictures])
    y = np.where(np.isfinite(y), y, np.nanmean(y, 0))
    pictures = oracle_calibration.draw(decoder, y, rng.normal(size=(64, oracle_renderer.Z_SIZE)))
    found = [np.isfinite(measure(p)[3]) for p in pictures]
    assert np.mean(found) > 0.95
    for picture_set in (pictures, numpy_pictures):
        assert 0.3 < np.mean(picture_set) / 255 < 0.7
    assert abs(np.std(pictures) - np.std(numpy_pictures)) < 0.25 * np.std(numpy_pictures)


def test_the_command_leaves_an_oracle_artifact_that_loads_like_a_learned_one(oracle_generator):
    model_dir, stdout = oracle_generator
    directory = os.path.join(model_dir, "generator")
    decoder, info = generator_artifact.load_generator(directory)
    assert info["kind"] == "oracle" and info["attributes"] == list(ATTRIBUTE_NAMES)
    assert info["z_size"] == oracle_renderer.Z_SIZE and info["image_size"] == 32
    exported = tf.saved_model.load(os.path.join(directory, "saved_model"))
    y = tf.constant([info["strength_mean"]], tf.float32)
    z = tf.zeros((1, info["z_size"]))
    image = exported.decode(y, z)["image"].numpy()
    np.testing.assert_allclose(image, (decoder([y, z])[0].numpy() + 1) / 2, atol=1e-5)
    result = json.load(open(os.path.join(model_dir, "eval_generator.json")))
    assert result["kind"] == "oracle" and set(result["attributes"]) == set(ATTRIBUTE_NAMES)
    for entry in result["attributes"].values():  # the benchmark's own fine pairs beside
        assert 0 <= entry["real_equal_rate"] <= 1 and 0 <= entry["equal_rate"] <= 1
    assert os.path.exists(os.path.join(model_dir, "sweeps.png"))
    assert "generator: oracle (no fit)" in stdout and "ledger: " in stdout
    ledger = stdout.strip().splitlines()[-1].split("ledger: ")[1]
    record = json.load(open(ledger))
    assert record["kind"] == "generator" and record["cell"] == {"image_size": 32, "seed": 0}
    assert record["machine"]["cpu_flags"]


def test_report_makes_the_goal_table_from_the_oracles_ledger(oracle_generator, tmp_path):
    from tests.cli import run_module
    model_dir, stdout = oracle_generator
    results = os.path.dirname(os.path.dirname(
        stdout.strip().splitlines()[-1].split("ledger: ")[1]))
    run_module("relattr_tf.report", "--study=oracle_generator", f"--results_dir={results}",
               f"--out={tmp_path}")
    table = open(tmp_path / "oracle_generator.md").read()
    assert "| attribute | figure | goal | oracle 32 px seed 0 |" in table
    for name in ATTRIBUTE_NAMES:
        assert f"| {name} | sweep Spearman, pooled | ≥ 0.9 | " in table
        assert f"| {name} | fine-step pairs: answered equal (%) | real ± 5 | " in table
    assert "relattr_tf.oracle_generator" in table  # the command, from the ledger


def test_blur_references_and_sharpness_read_what_they_say():
    from relattr_tf.evaluation import generator as generator_eval
    rng = np.random.default_rng(0)
    images = np.stack([render.render(rng.uniform(size=8), rng, 32) for _ in range(6)])
    refs = generator_eval.blur_references(images)
    assert 0 < refs["blur_2px_mse"] < refs["blur_4px_mse"]
    np.testing.assert_allclose(generator_eval.box_blur(np.ones((1, 5, 5, 3)), 4), 1.0)
    blurred = generator_eval.box_blur(images, 4)
    assert (generator_eval.high_frequency_energy(blurred) <
            0.5 * generator_eval.high_frequency_energy(images))
