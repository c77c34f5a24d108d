"""Model shapes, parameter counts, and loading the Keras VGG16 ImageNet weight file."""
import io
import json
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest

from relattr_tf.models import build_model, vgg16
from relattr_tf.models.vgg16 import (VGG16_TRUNK_PARAMS, build_vgg16_trunk, first_conv_channels,
                                    load_imagenet_weights, save_notop_weights)

SMALL = dict(image_size=32, width=0.125, cross_filters=16, head_units=32)


def test_width_one_trunk_is_exactly_vgg16():
    trunk = build_vgg16_trunk(32, 1.0)
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert trunk.count_params() == VGG16_TRUNK_PARAMS == reference.count_params()
    ours = [(l.name, [tuple(w.shape) for w in l.weights]) for l in trunk.layers if l.weights
            and l.name.startswith("block")]
    theirs = [(l.name, [tuple(w.shape) for w in l.weights]) for l in reference.layers
              if l.weights]
    assert ours == theirs


@pytest.mark.parametrize("name", ["dacrl", "dacrl_noatt", "ranknet"])
def test_pair_models_output_one_clipped_probability_per_pair(name):
    parts = build_model(name, **SMALL)
    a, b = np.random.rand(3, 32, 32, 3).astype("float32"), np.random.rand(3, 32, 32, 3)
    p = np.asarray(parts.network((a, b.astype("float32"))))
    assert p.shape == (3, 1) and np.all((p >= 1e-7) & (p <= 1 - 1e-7))
    assert parts.trunk.name == "trunk"


@pytest.mark.parametrize("name", ["dacrl", "dacrl_noatt", "ranknet", "deepstn_crop", "deepstn"])
def test_the_loss_is_taken_from_the_logit_so_a_saturated_wrong_pair_still_pulls(name):
    """p is clipped into [1e-7, 1 - 1e-7]; the cross-entropy of a clipped p has no gradient.
    A pair scored far the wrong way (logit -40, target 1) must still move the head."""
    import tensorflow as tf
    from relattr_tf.training.ranker import PairwiseRanker
    parts = build_model(name, **SMALL)
    a, b = (np.random.default_rng(k).uniform(size=(1, 32, 32, 3)).astype("float32")
            for k in (0, 1))
    logit = float(np.asarray(parts.logits((a, b)))[0, 0])
    np.testing.assert_allclose(np.asarray(parts.network((a, b)))[0, 0],
                               np.clip(1 / (1 + np.exp(-logit)), 1e-7, 1 - 1e-7), rtol=1e-5)
    last = parts.groups["head"][-1]
    kernel, bias = last.get_layer("head_logit").get_weights() if name.startswith("dacrl") \
        else last.get_weights()
    if name.startswith("dacrl"):  # the logit's bias moves it; a score's cancels in v_a - v_b
        last = last.get_layer("head_logit")
        last.set_weights([kernel, bias - 41.0 - logit])
    else:
        last.set_weights([kernel * (-41.0 / logit), bias])
    assert float(np.asarray(parts.logits((a, b)))[0, 0]) == pytest.approx(-41.0, rel=1e-3)
    target = np.ones((1, 1), np.float32)
    grads = {}
    for key, logits in (("logit", parts.logits), ("clipped p", None)):
        ranker = PairwiseRanker(parts.network, logits)
        with tf.GradientTape() as tape:
            p, loss = ranker._forward((a, b), target, training=False)
        grads[key] = float(tf.norm(tape.gradient(loss, last.trainable_variables[0])))
        assert np.all(np.asarray(p) < 1e-6)
        if key == "logit":
            assert float(loss) > 40  # -log sigmoid(logit) = |logit| here
    assert grads["logit"] > 1e-3 and grads["clipped p"] == 0.0


def test_deepstns_pull_on_a_box_outside_the_image_reaches_the_loss_through_the_logit():
    """The localiser's add_loss penalty must survive training through `logits`."""
    parts = build_model("deepstn_crop", **SMALL)
    fc = parts.groups["localizer"][0].get_layer("loc_fc2")
    kernel, bias = fc.get_weights()
    fc.set_weights([kernel * 0, np.array([0.33 / 0.05, 5.0, 0.0], np.float32)])  # centre 1.65
    a = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    parts.logits((a, a[::-1]))
    assert len(parts.logits.losses) == 1
    assert float(parts.logits.losses[0]) == pytest.approx(0.5 * (0.33 * 5.0) ** 2, rel=1e-4)


def test_parameter_counts_of_the_heads():
    width, filters, units, reduction = 0.125, 16, 32, 4
    kw = dict(image_size=32, width=width, cross_filters=filters, head_units=units,
              reduction=reduction)
    trunk = build_vgg16_trunk(32, width).count_params()
    channels = 2 * 64  # concatenated trunk outputs at width 1/8
    cross_head = (9 * channels * filters + filters) + (filters * units + units) + (units + 1)
    attention = (channels * (channels // reduction) + channels // reduction
                 + (channels // reduction) * channels + channels)
    assert build_model("dacrl_noatt", **kw).network.count_params() == trunk + cross_head
    assert build_model("dacrl", **kw).network.count_params() == trunk + cross_head + attention
    assert build_model("ranknet", **kw).network.count_params() == trunk + 64 + 1


def test_ranknet_is_antisymmetric_and_dacrl_is_not():
    a = np.random.rand(2, 32, 32, 3).astype("float32")
    b = np.random.rand(2, 32, 32, 3).astype("float32")
    ranknet = build_model("ranknet", **SMALL).network
    np.testing.assert_allclose(np.asarray(ranknet((a, b))) + np.asarray(ranknet((b, a))), 1.0,
                               atol=1e-6)
    dacrl = build_model("dacrl", **SMALL, seed=1).network
    assert not np.allclose(np.asarray(dacrl((a, b))) + np.asarray(dacrl((b, a))), 1.0, atol=1e-9)


def _write_keras_vgg16_notop_file(model, path):
    """Keras' legacy HDF5 weight layout, as in vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [l.name.encode() for l in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = names
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name.decode(), data=value)


def test_imagenet_weight_file_loads_and_matches_keras_vgg16(tmp_path):
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    _write_keras_vgg16_notop_file(reference, path)
    trunk = build_vgg16_trunk(32, 1.0)
    assert load_imagenet_weights(trunk, path) == 13
    images = np.random.rand(2, 32, 32, 3).astype("float32")  # RGB in [0, 1]
    expected = reference(keras.applications.vgg16.preprocess_input(images * 255.0))
    np.testing.assert_allclose(np.asarray(trunk(images)), np.asarray(expected), rtol=1e-4,
                               atol=1e-4)


def test_a_saved_trunk_loads_like_imagenets_file_into_keras_vgg16_and_our_trunk(tmp_path):
    images = np.random.rand(2, 32, 32, 3).astype("float32")
    trunk = build_vgg16_trunk(32, 1.0)
    path = str(tmp_path / "vgg16_notop.h5")
    save_notop_weights(trunk, path)
    reference = keras.applications.VGG16(weights=path, include_top=False, input_shape=(32, 32, 3))
    np.testing.assert_allclose(np.asarray(trunk(images)), np.asarray(reference(
        keras.applications.vgg16.preprocess_input(images * 255.0))), rtol=1e-4, atol=1e-4)
    small = build_vgg16_trunk(32, 0.25)  # a narrow trunk round-trips through the same layout
    save_notop_weights(small, path)
    assert first_conv_channels(path) == 16
    again = build_vgg16_trunk(32, 0.25)
    assert load_imagenet_weights(again, path) == 13
    np.testing.assert_array_equal(np.asarray(again(images)), np.asarray(small(images)))


def test_weight_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "not_weights.h5"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not_weights.h5: cannot read"):
        load_imagenet_weights(build_vgg16_trunk(32, 1.0), str(bad))
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg.h5")
    _write_keras_vgg16_notop_file(reference, path)
    with pytest.raises(ValueError, match="vgg.h5: layer block1_conv1 kernel shape.*--width must "
                                         "be the file's width"):
        load_imagenet_weights(build_vgg16_trunk(32, 0.5), path)


def test_he_initialisation_starts_near_unit_scale_and_glorot_shrinks_the_signal():
    images = np.random.default_rng(0).uniform(size=(4, 64, 64, 3)).astype("float32")
    pixels = float(np.sqrt(np.mean((images * 255 - np.array(vgg16.IMAGENET_MEAN_RGB)) ** 2)))
    keras.utils.set_random_seed(0)
    glorot = float(np.std(build_vgg16_trunk(64, 0.25, init="glorot")(images)))
    for size in (64, 128):
        keras.utils.set_random_seed(0)
        he = build_vgg16_trunk(size, 0.25, init="he")
        assert 0.2 < float(np.std(he(np.resize(images, (4, size, size, 3))))) < 5
    assert glorot < pixels / 100  # about 2x per ReLU layer over 13 layers


def test_a_he_trunks_weight_file_reads_0_255_input_like_imagenets(tmp_path):
    """The He trunk divides its input by PIXEL_STD; its file folds that into block1_conv1, so
    Keras' VGG16 with ImageNet's preprocessing computes the same features, and the file loads
    back into a He trunk or a Glorot one (no division) as the same function."""
    images = np.random.rand(2, 32, 32, 3).astype("float32")
    keras.utils.set_random_seed(1)
    trunk = build_vgg16_trunk(32, 1.0, init="he")
    assert vgg16.input_scale(trunk) == pytest.approx(vgg16.PIXEL_STD)
    path = str(tmp_path / "vgg16_notop.h5")
    save_notop_weights(trunk, path)
    reference = keras.applications.VGG16(weights=path, include_top=False, input_shape=(32, 32, 3))
    expected = np.asarray(trunk(images))
    np.testing.assert_allclose(np.asarray(reference(
        keras.applications.vgg16.preprocess_input(images * 255.0))), expected, rtol=1e-4,
        atol=1e-4 * np.abs(expected).max())
    for init in ("he", "glorot"):
        again = build_vgg16_trunk(32, 1.0, init=init)
        load_imagenet_weights(again, path)
        np.testing.assert_allclose(np.asarray(again(images)), expected, rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max())


def test_dacrl_head_init_he_starts_the_hidden_head_layers_at_he_scale():
    stds, he_std = {}, None
    for init in ("paper", "he"):
        parts = build_model("dacrl", image_size=32, width=0.125, cross_filters=8, head_units=8,
                            seed=0, head_init=init)
        kernel = parts.comparator.get_layer("cross_conv1").get_weights()[0]
        stds[init] = float(np.std(kernel))
        he_std = float(np.sqrt(2 / np.prod(kernel.shape[:3])))  # He: sqrt(2 / fan-in)
        logit = parts.comparator.get_layer("head_logit").get_weights()[0]
        assert float(np.std(logit)) < 0.02  # the output unit keeps the papers' N(0, 0.01)
    assert abs(stds["paper"] - 0.01) < 0.002
    assert abs(stds["he"] - he_std) < 0.2 * he_std, (stds, he_std)


def _as_saved_before_strength_scale(path, out):
    """A copy of a saved control net as relattr_tf wrote it before StrengthScale: each
    destandardising layer a `Destandardize` of relattr_tf.models.control, with `size` only,
    and its weights stored under that class's name."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as copy:
        for name in source.namelist():
            data = source.read(name)
            if name == "model.weights.h5":
                weights = io.BytesIO(data)
                with h5py.File(weights, "r+") as f:
                    for group in [g for g in f["layers"] if g.startswith("strength_scale")]:
                        f.move(f"layers/{group}",
                               f"layers/{group.replace('strength_scale', 'destandardize')}")
                data = weights.getvalue()
            if name == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "StrengthScale":
                        del layer["config"]["direction"]
                        layer.update(module="relattr_tf.models.control",
                                     class_name="Destandardize",
                                     registered_name="relattr_tf>Destandardize")
                data = json.dumps(config)
            copy.writestr(name, data)
    return out


def test_a_control_net_saved_before_the_strength_scale_layer_still_loads_and_agrees(tmp_path):
    """A control net saved with the Destandardize layer (the name StrengthScale replaced)
    loads in safe mode and gives the same y."""
    from relattr_tf.models import control as control_lib
    from relattr_tf.models.strength_scale import StrengthScale
    control = control_lib.build_control(4, 2, units=4, head_units=4, seed=0, mean=[0.5, 0.2],
                                        std=[0.1, 0.3])
    control.save(str(tmp_path / "now.keras"))
    old = _as_saved_before_strength_scale(str(tmp_path / "now.keras"),
                                          str(tmp_path / "before.keras"))
    assert b'"Destandardize"' in zipfile.ZipFile(old).read("config.json")
    loaded = keras.saving.load_model(old, safe_mode=True)
    layer = loaded.get_layer("y_a")
    assert isinstance(layer, StrengthScale) and layer.direction == "destandardize"
    q = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    for got, expected in zip(loaded(q, training=False), control(q, training=False)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-6)


def test_strength_scale_standardizes_unknowns_to_the_mean_and_inverts():
    from relattr_tf.models.strength_scale import StrengthScale
    forward, back = StrengthScale(2), StrengthScale(2, "destandardize")
    for layer in (forward, back):
        layer.set_weights([np.array([0.5, 1.0], np.float32), np.array([0.1, 2.0], np.float32)])
    y = np.array([[0.7, np.nan], [0.4, 3.0]], np.float32)
    standard = np.asarray(forward(y))
    np.testing.assert_allclose(standard, [[2.0, 0.0], [-1.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(back(standard))[1], y[1], atol=1e-6)
