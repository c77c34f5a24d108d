"""Attribute2Image (the CVAE) through the command line: training, the generator artifact, its
evaluation, TensorBoard images, a frozen decoder, 1 vs 2 replicas, the LFW layout."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from beam_jobs import convert_lfw_attributes
from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.training import cvae, vae_losses
from tests import real_fixtures
from tests.cli import ROOT, run_module
from tests.conftest import smoke_generator_args
from tests.test_core import event_values
from tests.test_training import _replica_check


_args = smoke_generator_args


@pytest.fixture()
def trained(smoke_generator):
    return smoke_generator


def test_the_loss_terms_are_the_gaussian_likelihood_and_kl():
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 3))
    logvar = rng.normal(size=(2, 4, 4, 3))
    expected = -stats.norm.logpdf(x, mean, np.exp(0.5 * logvar)).reshape(2, -1).sum(1)
    np.testing.assert_allclose(vae_losses.gaussian_nll(x, mean, logvar), expected, rtol=1e-6)
    mu, lv = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
    var = np.exp(lv)  # KL(N(mu, var) || N(0, 1)) per dimension, summed
    kl = (0.5 * (var + mu ** 2 - 1) - 0.5 * lv).sum(1)
    np.testing.assert_allclose(vae_losses.gaussian_kl(mu, lv), kl, rtol=1e-6)


def test_the_other_likelihoods_and_the_kl_warm_up():
    rng = np.random.default_rng(1)
    x, mean = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 3))
    d = np.abs(x - mean)
    huber = np.where(d < 1, 0.5 * d ** 2, d - 0.5).reshape(2, -1).sum(1)
    np.testing.assert_allclose(vae_losses.reconstruction_nll("smooth_l1", x, mean, None), huber,
                               rtol=1e-6)
    fixed = -stats.norm.logpdf(x, mean, 0.1).reshape(2, -1).sum(1)
    np.testing.assert_allclose(vae_losses.reconstruction_nll("fixed_gaussian", x, mean, None, 0.1),
                               fixed, rtol=1e-5)
    from relattr_tf.models import cvae as cvae_models
    encoder = cvae_models.build_encoder(16, 2, 3, 0.0625, seed=0, coordconv=True)
    decoder = cvae_models.build_decoder(16, 2, 3, 0.0625, seed=0, fc_width=1.0, coordconv=True)
    assert decoder.get_layer("dec_fc1").units == 256  # the reference's width, not 16
    assert decoder.get_layer("dec_conv0_coords").output.shape[-1] == 16 + 2
    vae = cvae.ConditionalVAE(encoder, decoder, kl_weight=2.0, kl_warmup_steps=4, seed=0)
    vae.compile({"all": keras.optimizers.SGD(0.0)}, {"all": vae.trainable_variables})
    images = rng.uniform(size=(4, 16, 16, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")
    assert float(vae.current_kl_weight()) == 0.0
    vae.fit(images, y, batch_size=4, epochs=2, verbose=0)
    assert float(vae.current_kl_weight()) == pytest.approx(1.0)  # 2 of 4 steps: half of 2
    vae.fit(images, y, batch_size=4, epochs=3, verbose=0)
    assert float(vae.current_kl_weight()) == pytest.approx(2.0)  # capped at kl_weight


def test_cvae_trains_exports_and_evaluates_through_the_cli(trained, tiny_data_dir):
    model_dir, stdout = trained
    assert "epoch 2/2" in stdout and "generator: held-out -ELBO" in stdout
    result = json.load(open(os.path.join(model_dir, "eval_generator.json")))
    assert result["measured"] and result["images_per_second"] > 0
    assert np.isfinite(result["heldout_negative_elbo"])
    for name, entry in result["attributes"].items():
        assert 0 <= entry["illegible_rate"] <= 1 and entry["pairs"] == 8
        assert "sweep_spearman" in entry and "pair_agreement" in entry
        assert 0 <= entry["same_z_illegible_rate"] <= 1 and "same_z_pair_agreement" in entry
        assert 0 <= entry["real_equal_rate"] <= 1  # the crowd on real fine pairs
    assert result["sharpness"] > 0 and result["real_high_frequency_energy"] > 0
    assert 0 < result["blur_2px_mse"] < result["blur_4px_mse"]
    from PIL import Image
    sheet = Image.open(os.path.join(model_dir, "sweeps.png"))  # a row per attribute, scaled 2x
    assert sheet.size == (7 * 32 * 2, 8 * 32 * 2)
    info = json.load(open(os.path.join(model_dir, "generator", "generator.json")))
    assert info["z_size"] == 8 and info["image_size"] == 32 and info["value_range"] == [0, 1]
    assert len(info["attributes"]) == len(info["strength_mean"]) == 8
    # The evaluate command knows the family from the model directory.
    again = run_module("relattr_tf.evaluate", f"--model_dir={model_dir}",
                       f"--data_dir={tiny_data_dir}")
    assert "generator: held-out -ELBO" in again.stdout


LOAD_SAVED_MODEL = """
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1] + "/generator/saved_model")
y = np.tile(np.float32([[0.5, 0.0, 0.1, 0.2, 1.5, 1.4, 0.3, 10.0]]), (3, 1))
image = loaded.decode(y=y, z=np.zeros((3, 8), np.float32))["image"].numpy()
assert "relattr_tf" not in sys.modules
np.save(sys.argv[2], image)
"""
LOAD_KERAS = """
import sys, keras, numpy as np
import relattr_tf.models
decoder = keras.saving.load_model(sys.argv[1] + "/generator/decoder.keras", safe_mode=True)
y = np.tile(np.float32([[0.5, 0.0, 0.1, 0.2, 1.5, 1.4, 0.3, 10.0]]), (3, 1))
mean, _ = decoder([y, np.zeros((3, 8), np.float32)])
np.save(sys.argv[2], (np.asarray(mean) + 1) / 2)
"""


def test_the_generator_loads_without_relattr_tf_and_in_safe_mode(trained, tmp_path):
    model_dir, _ = trained
    out = {}
    for name, code in (("saved_model", LOAD_SAVED_MODEL), ("keras", LOAD_KERAS)):
        path = str(tmp_path / f"{name}.npy")
        proc = subprocess.run([sys.executable, "-c", code, model_dir, path], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[name] = np.load(path)
    image = out["saved_model"]
    assert image.shape == (3, 32, 32, 3) and image.min() >= 0 and image.max() <= 1
    np.testing.assert_allclose(out["keras"], image, atol=1e-5)


def test_the_strength_statistics_are_the_training_parts_and_travel_with_the_model(
        trained, tiny_data_dir):
    model_dir, _ = trained
    from relattr_tf.data import images as images_lib, pipeline, schema
    from relattr_tf.models.cvae import strength_statistics_of
    store = images_lib.ImageStore(tiny_data_dir, ["generator"], 32)
    train_rows = ~pipeline.validation_rows(store.ids, 0.3)
    assert 0 < train_rows.sum() < len(train_rows)
    expected = np.nanmean(store.strengths[train_rows].astype(np.float64), axis=0)
    decoder, info = generator_artifact.load_generator(os.path.join(model_dir, "generator"))
    mean, std = strength_statistics_of(decoder)
    np.testing.assert_allclose(mean, expected, rtol=1e-5)
    np.testing.assert_allclose(info["strength_mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(info["strength_std"], std, rtol=1e-6)
    assert info["attributes"] == schema.read_metadata(tiny_data_dir)["strength_names"]


def test_tensorboard_shows_reconstructions_samples_and_sweeps(trained):
    model_dir, _ = trained
    tags = {tag for (run, tag) in event_values(os.path.join(model_dir, "tensorboard"))
            if run == "generator"}
    assert {"reconstructions", "prior_samples", "sweep/brightness", "sweep/size"} <= tags


def test_the_loaded_generator_is_frozen_under_another_models_training_step(trained):
    model_dir, _ = trained
    decoder, info = generator_artifact.load_generator(os.path.join(model_dir, "generator"))
    before = [w.copy() for w in decoder.get_weights()]  # moving statistics included
    y, z = keras.Input((8,)), keras.Input((8,))
    image, _ = decoder([y, z])
    score = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(image))
    other = keras.Model([y, z], score)
    head_before = other.layers[-1].get_weights()[0].copy()
    other.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    rng = np.random.default_rng(0)
    other.fit([rng.normal(size=(16, 8)), rng.normal(size=(16, 8))], rng.normal(size=(16, 1)),
              epochs=2, batch_size=8, verbose=0)
    assert not np.array_equal(other.layers[-1].get_weights()[0], head_before)  # it trained
    for a, b in zip(decoder.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("settings", [  # SmoothL1: the layered model's replica test
    (), ("--set=likelihood=fixed_gaussian", "--set=coordconv=true", "--set=fc_width=0.25")])
def test_cvae_takes_the_same_step_on_one_and_two_replicas(settings):
    result = _replica_check("--model=cvae", *settings)
    assert result["step_one"] > 1e-4
    assert result["max_weight_diff"] < 1e-5 * max(1.0, result["step_one"] * 1e3)
    assert result["loss_one"] == pytest.approx(result["loss_two"], rel=1e-5)


def test_cvae_trains_on_lfw_attribute_scores_in_the_real_layout(tmp_path):
    root = str(tmp_path / "LFW")
    real_fixtures.make_lfw_attribute_faces(root, count=40)
    data_dir = str(tmp_path / "lfw_attributes")
    convert_lfw_attributes.run([f"--input_dir={root}", f"--output_dir={data_dir}",
                                "--image_size=32"])
    model_dir = str(tmp_path / "cvae_lfw")
    run_module("relattr_tf.train", "--flagfile=configs/cvae_lfw.flags", f"--data_dir={data_dir}",
               f"--model_dir={model_dir}", "--make_data=false", "--image_size=32",
               "--z_size=8", "--cvae_width=0.0625", "--epochs=2", "--steps_per_epoch=3",
               "--batch_size=8", "--sweep_steps=3", "--sweep_samples=2", "--eval_pairs=4",
               "--validation_fraction=0.25")
    result = json.load(open(os.path.join(model_dir, "eval_generator.json")))
    assert not result["measured"]  # no measurement function for faces
    assert set(result["attributes"]) == set(real_fixtures.LFW_ATTRIBUTE_NAMES)
    assert all(entry["sweep_change"] > 0 for entry in result["attributes"].values())
