"""visualize: the maps' arithmetic on models whose answer is known, then every --kind on small
finished model directories (untrained weights: what is tested is what gets drawn and measured,
not what a model learned)."""
import json
import os
import re
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

from relattr_tf import models
from relattr_tf.artifacts.run_config import CONFIG_FILE
from relattr_tf.config import Config, DataConfig, RankerConfig, TrainConfig
from relattr_tf.data import pipeline, schema
from relattr_tf.artifacts import pair_model as export
from relattr_tf.visualization import drawing, generated_pairs, kinds, maps
from tests import attic_fixtures
from tests.cli import run_module
from tests.test_core import event_values

SIZE = 32


def finished_model_dir(directory, model, data_dir, attribute="tilt", **family):
    """A model_dir as training leaves it (config.json, model.keras, export/), untrained."""
    from relattr_tf.training import task, run  # noqa: F401  run registers every task
    config = Config(model=model, data=DataConfig(data_dir=data_dir, image_size=SIZE),
                    train=TrainConfig(seed=1),
                    family=RankerConfig(width=0.0625, cross_filters=8, head_units=8,
                                        attribute=attribute, head_init="he", **family))
    parts = task.make_task(config).build_parts()
    os.makedirs(directory, exist_ok=True)
    export.export_pair_model(parts, str(directory), SIZE)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    return str(directory), parts


def test_saliency_is_the_input_gradient_and_lies_where_the_score_looks():
    # A score that reads only the pixels of rows 4-11, columns 8-15: no gradient elsewhere.
    image = keras.Input((16, 16, 3))
    score = keras.layers.Lambda(lambda x: keras.ops.sum(x[:, 4:12, 8:16] ** 2, axis=(1, 2, 3))
                                [:, None])(image)
    parts = models.ModelParts(network=None, groups={}, scorer=keras.Model(image, score))
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(2, 3, 16, 16, 3)).astype("float32")
    saliency_a, saliency_b = maps.pair_saliency(parts, a, b)
    # d(v_a - v_b)/d a = 2 a inside the window: its max over channels; -2 b for b.
    expected = np.zeros((3, 16, 16))
    expected[:, 4:12, 8:16] = 2 * a[:, 4:12, 8:16].max(-1)
    np.testing.assert_allclose(saliency_a, expected, rtol=1e-5)
    assert saliency_b[:, :4].max() == 0 and saliency_b[:, 4:12, 8:16].min() > 0
    box = np.array([4 / 16, 8 / 16, 12 / 16, 16 / 16])  # exactly the window
    shares, areas = maps.mass_inside(saliency_a, [box] * 3)
    np.testing.assert_allclose(shares, 1.0, rtol=1e-6)
    np.testing.assert_allclose(areas, 0.25)
    shares, areas = maps.mass_inside(saliency_a, [np.array([0, 0.5, 0.5, 1]), -np.ones(4),
                                                  np.array([0, 0, 1, 1])])
    assert len(shares) == 2  # the unknown box is left out
    assert 0 < shares[0] < 1 and shares[1] == pytest.approx(1.0)


def test_attention_reads_the_weights_and_features_the_comparator_multiplies():
    parts = models.build_model("dacrl", image_size=SIZE, width=0.125, cross_filters=8,
                               head_units=8, seed=0, head_init="he")
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(2, 4, SIZE, SIZE, 3)).astype("float32")
    weights, features = maps.attention(parts, a, b)
    channels = parts.encoder.output.shape[-1]
    assert weights.shape == (4, 2 * channels) and features.shape[-1] == 2 * channels
    probe = keras.Model(parts.comparator.inputs,
                        parts.comparator.get_layer("attention_scale").output)
    scaled = np.asarray(probe([parts.encoder(a), parts.encoder(b)]))
    np.testing.assert_allclose(features * weights[:, None, None, :], scaled, rtol=1e-5,
                               atol=1e-6)
    map_a, map_b = maps.attended_maps(weights, features)
    np.testing.assert_allclose(map_a, scaled[..., :channels].sum(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(map_b, scaled[..., channels:].sum(-1), rtol=1e-5, atol=1e-6)
    noatt = models.build_model("dacrl_noatt", image_size=SIZE, width=0.125, cross_filters=8,
                               head_units=8)
    with pytest.raises(ValueError, match="no attention block"):
        maps.attention(noatt, a, b)


def _png_shape(path):
    with Image.open(path) as image:
        return image.height, image.width


@pytest.fixture(scope="module")
def pair_models(tiny_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("visualize")
    return {name: finished_model_dir(root / name, name, tiny_data_dir)[0]
            for name in ("dacrl", "deepstn")}


def test_saliency_attention_and_boxes_write_sheets_figures_and_tensorboard(pair_models,
                                                                           tiny_data_dir,
                                                                           tmp_path):
    for kind, model in (("saliency", "dacrl"), ("attention", "dacrl"), ("boxes", "deepstn")):
        options = kinds.Options(pair_models[model], count=3, measure_pairs=10)
        paths, figures = drawing.draw(kind, options, str(tmp_path / kind))
        assert paths == [str(tmp_path / kind / f"{kind}.png")]
        height, width = _png_shape(paths[0])
        # --count=3: three rows of pairs; boxes: three images, one row (title 21 px, rows
        # of 128 px tiles with a 13 px caption and 4 px apart)
        assert height == 21 + (3 if kind != "boxes" else 1) * (128 + 13 + 4)
        assert width >= (4 * 128 if kind != "boxes" else 3 * 128)
        assert json.load(open(tmp_path / kind / f"{kind}.json")) == figures
        tags = event_values(os.path.join(pair_models[model], "tensorboard"))
        assert ("visualize", f"{kind}/{kind}") in tags
        if kind == "boxes":
            assert figures["images"] > 0 and 0 <= figures["mean_iou"] <= 1
        else:  # images whose map is all zero (dead untrained units) are left out
            assert figures["pairs"] == 10 and 0 < figures["images_with_box"] <= 20
            assert 0 <= figures["mass_in_box"] <= 1 and 0 < figures["box_area"] < 1
    store = pipeline.image_store(schema.read_metadata(tiny_data_dir), tiny_data_dir, "tilt",
                                 "test", pipeline.InputConfig(image_size=SIZE))
    assert figures["images"] == int((store.boxes[:, 0] >= 0).sum())  # every one with a box


def test_wrong_kind_for_the_model_is_a_one_line_error(pair_models):
    proc = run_module("relattr_tf.visualize", f"--model_dir={pair_models['deepstn']}",
                      "--kind=attention", "--count=2", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"relattr_tf.visualize: {pair_models['deepstn']}: --kind=attention needs a DACRL model, "
        f"this is deepstn")
    with pytest.raises(ValueError, match="--kind=sweep needs a CVAE model_dir"):
        drawing.draw("sweep", kinds.Options(pair_models["dacrl"]), "unused")
    with pytest.raises(ValueError, match="--kind=boxes needs a DeepSTN model"):
        drawing.draw("boxes", kinds.Options(pair_models["dacrl"]), "unused")


def test_sweep_rows_step_the_asked_for_strength(tiny_data_dir, tmp_path):
    generator = attic_fixtures.make_generator(tmp_path / "cvae" / "generator",
                                              data_dir=tiny_data_dir)
    proc = run_module("relattr_tf.visualize", f"--model_dir={tmp_path / 'cvae'}", "--kind=sweep",
                      "--attribute=brightness", "--count=2", "--steps=4",
                      f"--out={tmp_path / 'out'}")
    assert os.path.exists(generator)
    height, width = _png_shape(tmp_path / "out" / "sweep_brightness.png")
    assert 2 * 128 < height < 3 * 128 and 4 * 128 < width < 5 * 128
    figures = json.load(open(tmp_path / "out" / "sweep.json"))
    assert set(figures) == {"brightness"} and -1 <= figures["brightness"][
        "spearman_within_sweep"] <= 1
    assert "sweep: brightness Spearman" in proc.stdout


def test_generators_show_real_images_then_each_generator_for_the_same_strengths(
        tiny_data_dir, tmp_path):
    attic_fixtures.make_generator(tmp_path / "cvae" / "generator", data_dir=tiny_data_dir)
    other = attic_fixtures.make_generator(tmp_path / "other" / "generator", seed=1)
    proc = run_module("relattr_tf.visualize", f"--model_dir={tmp_path / 'cvae'}",
                      "--kind=generators", f"--compare={os.path.dirname(other)}", "--count=3",
                      f"--out={tmp_path / 'out'}")
    height, width = _png_shape(tmp_path / "out" / "generators.png")
    assert 3 * 128 < height < 4 * 128 and 3 * 128 < width < 5 * 128  # 3 rows of 3 tiles
    assert f"generators: real images, then cvae ({tmp_path / 'cvae'}), cvae (" in proc.stdout
    figures = json.load(open(tmp_path / "out" / "generators.json"))
    assert list(figures) == [str(tmp_path / "cvae"), os.path.dirname(other)]
    # In-process: the command turns this ValueError into its one-line error (cli.run).
    from relattr_tf.visualization import drawing, kinds
    bad = attic_fixtures.make_generator(tmp_path / "bad" / "generator", attributes=["gloss"])
    options = kinds.Options(str(tmp_path / "cvae"), compare=(os.path.dirname(bad),))
    with pytest.raises(ValueError, match="its generator asks for gloss, which " + re.escape(
            str(tiny_data_dir)) + " does not measure$"):
        drawing.draw("generators", options, str(tmp_path / "bad_out"))


def test_pairs_show_each_round_and_the_labels_it_imported(tiny_data_dir, tmp_path):
    from relattr_tf.experiments import active_loop
    from relattr_tf.labelling import package as package_lib
    from relattr_tf.training import attic
    data_dir = str(shutil.copytree(tiny_data_dir, tmp_path / "data"))
    generator = attic_fixtures.make_generator(tmp_path / "generator")
    config = attic_fixtures.attic_config(generator, data_dir)
    loop = tmp_path / "loop"
    phase = str(loop / "round-01" / "adversarial")
    task = attic.AtticTask(config)
    model = task.build()
    task.export(model, phase)
    with open(os.path.join(phase, CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    round_dir = str(loop / "round-01")
    active_loop.write_package(config, phase, os.path.join(round_dir, "labelling"), "test-r01")
    options = active_loop.LoopOptions(labeler="crowd")
    summary = active_loop.label_round(config, round_dir, "test-r01", options, "")
    package = package_lib.read(os.path.join(round_dir, "labelling"))
    # The sheet's labels are those the data directory received: the crowd's answers voted
    # with the run's thresholds, rejected pairs absent.
    targets, who = generated_pairs._imported_targets(round_dir, package, config)
    voted, _ = package_lib.vote(package, os.path.join(round_dir, "crowd_export.json"),
                                min_agreement=config.family.min_agreement,
                                min_confidence=config.family.min_confidence)
    assert who == "crowd" and targets == [label and label["target"] for label in voted]
    assert sum(t is not None for t in targets) == summary["accepted"] > 0
    assert generated_pairs._crowd_targets(package["images"]()[0][:2], package["images"]()[1][:2],
                                "smile", 0) == ([None, None], "no crowd")

    os.makedirs(loop / "round-02" / "adversarial")  # a round still running: skipped
    drawn, figures = generated_pairs.attic_pairs(kinds.Options(str(loop), count=4))
    sheet = drawn["pairs"][0]
    assert sheet.shape[0] > 2 * 64  # two rows: the phase's start, the labelled pairs
    assert figures["unfinished_rounds"] == ["round-02"]
    with pytest.raises(ValueError, match="an ATTIC loop's folder holds one ranker per round; "
                                         "pass one, e.g. --model_dir=.*round-01/adversarial"):
        drawing.draw("saliency", kinds.Options(str(loop)), "unused")
    # A folder name a glob pattern would misread is still known for a loop's.
    os.makedirs(tmp_path / "runs [1]" / "round-01")
    with pytest.raises(ValueError, match=r"holds one ranker per round; pass one \(none has"):
        export.pair_model_config(str(tmp_path / "runs [1]"))
    drawn, _ = generated_pairs.attic_pairs(kinds.Options(phase, count=4))  # one phase: start and end
    assert drawn["pairs"][0].shape[0] > 2 * 64
