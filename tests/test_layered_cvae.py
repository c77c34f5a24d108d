"""The layered Attribute2Image: subject masks in the generator table, its loss, 1 vs 2
replicas, and the command leaving the plain CVAE's artifact interface."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.data import schema
from relattr_tf.data.synthetic import render
from relattr_tf.data.synthetic.measure import subject_mask
from tests.cli import run_module
from tests.test_training import _replica_check


def _records(data_dir, table):
    meta = schema.read_metadata(data_dir)
    files = schema.shard_paths(data_dir, schema.image_table(meta, data_dir, table), table)
    return [schema.decode_record(r.numpy()) for r in
            tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_the_generator_table_stores_the_renderers_subject_mask_as_alpha(layered):
    """The smoke config's own data (make_synthetic --subject_masks): RGBA generator images
    whose alpha covers the measured subject, strengths measured on their RGB, RGB elsewhere."""
    from relattr_tf.data.synthetic.measure import measure
    data_dir = layered[2]
    meta = schema.read_metadata(data_dir)
    assert meta["images"]["generator"]["mask"] == "alpha"
    for record in _records(data_dir, "generator")[:20]:
        rgba = np.asarray(Image.open(io.BytesIO(record["image"])))
        assert rgba.shape[-1] == 4
        np.testing.assert_allclose(record["strengths"], measure(rgba[..., :3]), rtol=1e-5)
        found = subject_mask(rgba[..., :3].astype(np.float32) / 255)
        if found is not None:  # the measured subject lies under the mask
            assert (rgba[..., 3][found] > 0).mean() > 0.9
            assert rgba[..., 3].max() == 255
    for table in ("train", "test"):  # the rankers' tables stay RGB
        image = Image.open(io.BytesIO(_records(data_dir, table)[0]["image"]))
        assert image.mode == "RGB"


def test_subject_coverage_is_the_subjects_share_of_each_pixel():
    scene = {}
    render.render(np.full(8, 0.5), np.random.default_rng(0), 32, scene)
    cover = render.subject_coverage(scene)[..., 0]
    assert cover.shape == (32, 32) and cover.max() == 255
    assert set(np.unique(cover)) <= {0, 64, 128, 191, 255}  # quarters of a 2 x 2 block


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    root = tmp_path_factory.mktemp("layered")
    model_dir = str(root / "run")
    proc = run_module("relattr_tf.train_generator", "--flagfile=configs/layered_cvae_smoke.flags",
                      f"--data_dir={root / 'data'}", f"--model_dir={model_dir}",
                      f"--results_dir={root / 'results'}", "--study=layered_smoke")
    return model_dir, proc.stdout, str(root / "data")


def test_the_smoke_config_trains_and_leaves_the_plain_cvaes_artifact(layered):
    model_dir, stdout, _ = layered
    assert "training layered_cvae" in stdout and "subject masks" in stdout
    assert "epoch 2/2" in stdout and "mask_bce=" in stdout
    decoder, info = generator_artifact.load_generator(os.path.join(model_dir, "generator"))
    assert info["model"] == "layered_cvae" and info["masked"] is True
    assert info["z_size"] == info["z_fg_size"] + info["z_bg_size"] == 8 + 4
    y = np.tile(np.asarray(info["strength_mean"], np.float32), (2, 1))
    mean, logvar = decoder([y, np.zeros((2, info["z_size"]), np.float32)])
    assert mean.shape == (2, 32, 32, 3) and float(np.abs(logvar).max()) == 0.0
    assert -1.0 <= float(np.min(mean)) and float(np.max(mean)) <= 1.0
    result = json.load(open(os.path.join(model_dir, "eval_generator.json")))
    assert np.isfinite(result["heldout_reconstruction_mse"]) and result["sharpness"] > 0
    assert set(result["attributes"]) == set(info["attributes"])
    assert -1 <= result["attributes"]["brightness"]["reconstruction_spearman"] <= 1
    assert 0 <= result["attributes"]["size"]["reconstruction_unreadable"] <= 1
    # --goal_eval_every=1: the goals measured after each epoch, in the result (and ledger).
    assert [e["epoch"] for e in result["goal_curve"]] == [1, 2]
    assert "goals after epoch 1:" in stdout  # the final evaluation measures epoch 2
    assert json.load(open(os.path.join(model_dir, "summary.json")))["epochs_run"] == 2
    assert set(result["goal_curve"][1]["attributes"]) == set(info["attributes"])
    # --background_y: the background decoder reads y, and moving y moves the background.
    assert info["background_y"] is True
    background = decoder.get_layer("background_decoder")
    z_bg = np.random.default_rng(1).normal(size=(2, info["z_bg_size"])).astype(np.float32)
    far = y + 3 * np.asarray(info["strength_std"], np.float32)
    assert float(np.abs(background([far, z_bg]) - background([y, z_bg])).max()) > 1e-4
    # Its ledger cell, and the goal table report makes from it.
    ledger = stdout.strip().splitlines()[-1].split("ledger: ")[1]
    record = json.load(open(ledger))
    assert record["kind"] == "generator" and record["data_sha256"]
    assert record["cell"] == {"model": "layered_cvae", "image_size": 32, "seed": 0,
                              "background_y": True}
    results = os.path.dirname(os.path.dirname(ledger))
    docs = os.path.join(os.path.dirname(model_dir), "docs")
    run_module("relattr_tf.report", "--study=layered_smoke", f"--results_dir={results}",
               f"--out={docs}")
    table = open(os.path.join(docs, "layered_smoke.md")).read()
    assert "| layered_cvae, background reads y 32 px seed 0 |" in table
    assert "reconstruction MSE (held out)" in table and "spread at one y" in table
    assert "![layered_smoke](layered_smoke.png)" in table  # the goal curve, from the ledger
    assert os.path.getsize(os.path.join(docs, "layered_smoke.png")) > 1000


def test_the_layered_loss_needs_a_likelihood_without_a_variance_head():
    from relattr_tf import config as config_lib
    from relattr_tf.training.layered_cvae import LayeredCvaeTask
    config = config_lib.Config(model="layered_cvae", data=config_lib.DataConfig(image_size=16),
                               family=config_lib.GeneratorConfig(likelihood="learned_gaussian"))
    with pytest.raises(config_lib.ConfigError, match="--likelihood=learned_gaussian: the "
                                                     "layered generator has no variance head"):
        LayeredCvaeTask(config, masked=True).check_config(1)


def test_the_plain_cvae_refuses_a_background_reading_y():
    from relattr_tf import config as config_lib
    from relattr_tf.training.cvae import CvaeTask
    config = config_lib.Config(model="cvae", data=config_lib.DataConfig(image_size=16),
                               family=config_lib.GeneratorConfig(background_y=True))
    with pytest.raises(config_lib.ConfigError, match="--background_y: the plain CVAE has no "
                                                     "background decoder"):
        CvaeTask(config).check_config(1)


def test_the_mask_terms_follow_the_mask():
    from relattr_tf import config as config_lib
    from relattr_tf.training.layered_cvae import LayeredCvaeTask
    config = config_lib.Config(model="layered_cvae", data=config_lib.DataConfig(image_size=16),
                               family=config_lib.GeneratorConfig(z_size=3, z_bg_size=2,
                                                                 cvae_width=0.0625,
                                                                 likelihood="smooth_l1"))
    stats = dict(names=["a", "b"], mean=[0, 0], std=[1, 1], min=[-1, -1], max=[1, 1])
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(2, 16, 16, 3)).astype("float32")
    y = rng.normal(size=(2, 2)).astype("float32")
    masked = LayeredCvaeTask(config, stats, masked=True).build()
    masked.sample_posterior = False
    everywhere = np.concatenate([image, np.ones((2, 16, 16, 1), np.float32)], axis=-1)
    nowhere = np.concatenate([image, np.zeros((2, 16, 16, 1), np.float32)], axis=-1)
    bce_subject = masked._loss_terms(everywhere, y, training=False)[3]
    bce_background = masked._loss_terms(nowhere, y, training=False)[3]
    g = masked.parts((everywhere, y))["g"].numpy().reshape(2, -1)
    np.testing.assert_allclose(bce_subject, -np.log(1 - np.clip(g, 1e-6, 1 - 1e-6)).sum(1),
                               rtol=1e-4)
    assert not np.allclose(bce_subject, bce_background)
    plain = LayeredCvaeTask(config, stats, masked=False).build()
    assert float(np.max(plain._loss_terms(image, y, training=False)[3])) == 0.0


def test_layered_cvae_takes_the_same_step_on_one_and_two_replicas():
    result = _replica_check("--model=layered_cvae", "--set=likelihood=smooth_l1",
                            "--set=z_bg_size=2")  # no warm-up: the KL terms are in the step
    assert result["step_one"] > 1e-4
    assert result["max_weight_diff"] < 1e-5 * max(1.0, result["step_one"] * 1e3)
    assert result["loss_one"] == pytest.approx(result["loss_two"], rel=1e-5)


def test_the_goals_missed_are_the_goal_tables_bold_figures():
    from relattr_tf.evaluation.generator_table import generator_table, goals_missed
    met = dict(sweep_spearman=0.95, sweep_unreadable=0.05, pair_agreement=0.93,
               illegible_rate=0.05, equal_rate=0.1375, real_equal_rate=0.0875)  # bars exactly
    fit = dict(heldout_reconstruction_mse=0.002, blur_2px_mse=0.0022)
    assert goals_missed(dict(fit, attributes={"size": met})) == []
    for key, value in (("sweep_spearman", 0.89), ("sweep_unreadable", 0.06),
                       ("pair_agreement", float("nan")), ("illegible_rate", 0.11),
                       ("equal_rate", 0.14), ("real_equal_rate", None)):
        result = dict(fit, attributes={"size": dict(met, **{key: value})})
        assert goals_missed(result) == [("size", "equal_rate" if key == "real_equal_rate"
                                         else key)]
        _, rows, _, _ = generator_table([dict(cell=dict(model="m", image_size=64, seed=0),
                                              metrics=result)])
        bold = [row[1] for row in rows if row[-1].startswith("**")]
        assert len(bold) == 1  # the one figure goals_missed names, and nothing else
    assert goals_missed(dict(heldout_reconstruction_mse=0.003, blur_2px_mse=0.0022,
                             attributes={"size": met})) == [("", "heldout_reconstruction_mse")]
    assert ("", "heldout_reconstruction_mse") in goals_missed({"attributes": {}})


def test_the_goal_curve_stops_training_once_every_goal_is_met_and_the_checkpoint_says_so(
        tmp_path):
    import keras
    from relattr_tf.training import callbacks, generator_goals
    results = iter([{"attributes": {"size": {"sweep_spearman": 0.5}}},
                    {"attributes": {"size": {"sweep_spearman": 0.95}}}])
    seen_logs = []

    def evaluate(logs):
        seen_logs.append(logs)
        return next(results)

    curve = generator_goals.GoalCurve(
        evaluate, lambda r: [] if r["attributes"]["size"]["sweep_spearman"] > 0.9
        else [("size", "sweep_spearman")], 2, str(tmp_path / "curve.json"), str(tmp_path),
        ["sweep_spearman"])
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    checkpoints = str(tmp_path / "checkpoints")
    history = model.fit(np.zeros((4, 1)), np.zeros((4, 1)), epochs=10, verbose=0,
                        callbacks=[curve, callbacks.EpochCheckpoint(checkpoints)])
    assert len(history.epoch) == 4  # evaluated after epochs 2 and 4, met at 4
    assert "loss" in seen_logs[0]
    entries = generator_goals.read_goal_curve(str(tmp_path / "curve.json"))
    assert [(e["epoch"], e["goals_missed"]) for e in entries] == [(2, 1), (4, 0)]
    assert callbacks.checkpoint_epoch(checkpoints) == 4 and callbacks.checkpoint_stopped(
        checkpoints)
    # A fresh run in the same folder (no checkpoint: it starts at epoch 0) drops the old curve.
    again = generator_goals.GoalCurve(evaluate, lambda r: [("size", "x")], 2,
                                      str(tmp_path / "curve.json"), str(tmp_path), [])
    model.fit(np.zeros((4, 1)), np.zeros((4, 1)), epochs=1, verbose=0, callbacks=[again])
    assert generator_goals.read_goal_curve(str(tmp_path / "curve.json")) == []
