"""DeepSTN through the command line: both stages, the export's three signatures, box coverage,
boxes in TensorBoard, safe loading, and 1 vs 2 replicas."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from relattr_tf.artifacts import pair_model, run_config
from relattr_tf import models
from tests.cli import run_module
from tests.test_training import _replica_check


def _args(data_dir, model_dir, *extra):
    return ["--flagfile=configs/deepstn_smoke.flags", f"--data_dir={data_dir}",
            f"--model_dir={model_dir}", "--attribute=brightness", *extra]


@pytest.fixture(scope="module")
def stages(tiny_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("deepstn")
    stage1, stage2 = str(root / "stage1"), str(root / "stage2")
    first = run_module("relattr_tf.train", *_args(tiny_data_dir, stage1))
    second = run_module("relattr_tf.train", *_args(tiny_data_dir, stage2, "--model=deepstn",
                                                   f"--init_from={stage1}"))
    return stage1, stage2, first.stdout, second.stdout


def test_both_stages_train_and_report_box_coverage(stages):
    stage1, stage2, first, second = stages
    for model_dir, stdout in ((stage1, first), (stage2, second)):
        assert "epoch 2/2" in stdout and "boxes: mean IoU" in stdout
        result = json.load(open(os.path.join(model_dir, "eval_test.json")))
        coverage = result["box_coverage"]
        assert coverage["images"] > 0 and 0 <= coverage["mean_iou"] <= 1
        # The floor: the untrained localiser's centred box of --box_scale_init, measured alike.
        floor = coverage["centred_box"]
        assert set(floor) == {"mean_iou", "iou_at_least_half", "contains_centre"}
        assert 0 <= floor["mean_iou"] <= 1 and "(the untrained centred box: " in stdout
        assert result["method"] == "score"


def test_stage_two_starts_with_the_stage_one_boxes(stages):
    stage1, _, _, _ = stages
    parts = models.build_model("deepstn", image_size=32, width=0.125, seed=9)
    pair_model.load_localizer(parts, stage1)
    exported = tf.saved_model.load(os.path.join(stage1, "export"))
    x = np.random.default_rng(3).uniform(size=(4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(parts.localizer(x).numpy(),
                               exported.transform(image=x)["theta"].numpy(), atol=1e-5)
    with pytest.raises(pair_model.ConfigError, match="the same --width"):
        pair_model.load_localizer(models.build_model("deepstn", image_size=32, width=0.25), stage1,
                              config=run_config.load_run_config(stage1).with_values(
                                  model="deepstn", width=0.25))


def test_export_has_pair_score_and_box_and_loads_without_relattr_tf(stages):
    _, stage2, _, _ = stages
    script = ("import sys, numpy as np, tensorflow as tf\n"
              "assert 'relattr_tf' not in sys.modules\n"
              f"m = tf.saved_model.load({os.path.join(stage2, 'export')!r})\n"
              "x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype('float32')\n"
              "p = m.pair(image_a=x, image_b=x[::-1])['p'].numpy().ravel()\n"
              "s = m.score(image=x)['score'].numpy().ravel()\n"
              "b = m.box(image=x)['box'].numpy()\n"
              "t = m.transform(image=x)['theta'].numpy()\n"
              "assert b.shape == (3, 3) and np.all(b[:, 0] > 0) and t.shape == (3, 6)\n"
              "assert np.allclose(t[:, 2], b[:, 0] * b[:, 1], atol=1e-6)\n"
              "assert np.allclose(p, 1 / (1 + np.exp(-(s - s[::-1]))), atol=1e-5)\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd="/",
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    network = keras.saving.load_model(os.path.join(stage2, "model.keras"), safe_mode=True)
    assert network.name == "deepstn"


def test_tensorboard_draws_the_boxes_every_epoch(stages):
    _, stage2, _, _ = stages
    steps = set()
    for root, _, files in os.walk(os.path.join(stage2, "tensorboard", "boxes")):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                steps |= {event.step for v in event.summary.value if v.tag == "boxes"}
    assert steps == {1, 2}


def test_one_and_two_replicas_take_the_same_deepstn_step():
    result = _replica_check("--model=deepstn")
    assert result["step_one"] > 1e-4
    assert result["max_weight_diff"] < 1e-6 * max(1.0, result["step_one"] * 1e3)


@pytest.mark.slow  # a second transform; the box one trains in both stages above
def test_the_affine_option_starts_at_the_centred_box_and_trains(tiny_data_dir, tmp_path):
    from relattr_tf.models.boxes import box_corners
    parts = models.build_model("deepstn", image_size=32, width=0.125, seed=0,
                               box_scale_init=0.5, stn_transform="affine")
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    theta = parts.localizer(x).numpy()
    assert theta.shape == (2, 6)
    np.testing.assert_allclose(theta[:, [0, 1, 3, 4]], [[0.5, 0, 0, 0.5]] * 2, atol=1e-6)
    corners = box_corners(theta)
    np.testing.assert_allclose(corners[:, 2] - corners[:, 0], 0.5, atol=1e-6)  # half the side
    model_dir = str(tmp_path / "affine")
    proc = run_module("relattr_tf.train", *_args(tiny_data_dir, model_dir, "--model=deepstn",
                                                 "--stn_transform=affine", "--epochs=1",
                                                 "--tensorboard_images=0"))
    assert "boxes: mean IoU" in proc.stdout
