"""The spatial transformer's sampler (a building block of DeepSTN): identity, whole-pixel
translation, gradients with respect to the box against finite differences, and the pull-back
of a box that leaves the image."""
import numpy as np
import tensorflow as tf

from relattr_tf.models import blocks


def _images(size=16, batch=2):
    return tf.random.stateless_uniform((batch, size, size, 3), (4, 2))


def test_identity_transform_returns_the_input():
    images = _images()
    theta = blocks.box_transform(tf.ones(2), tf.zeros(2), tf.zeros(2))
    out = blocks.BilinearSampler((16, 16))(images, theta)
    np.testing.assert_allclose(out.numpy(), images.numpy(), atol=1e-5)


def test_a_known_translation_moves_a_pattern_by_that_many_pixels():
    size = 17  # normalised step 2 / (size - 1) = 1/8 of the range: 1 pixel
    images = np.zeros((1, size, size, 1), np.float32)
    images[0, 8, 8, 0] = 1.0  # a dot in the centre
    shift = 3 * 2.0 / (size - 1)  # source x = target x + 3 pixels
    theta = blocks.box_transform(tf.ones(1), tf.constant([shift]), tf.zeros(1))
    out = blocks.BilinearSampler((size, size))(images, theta).numpy()[0, ..., 0]
    assert np.unravel_index(out.argmax(), out.shape) == (8, 5)  # seen 3 pixels to the left
    np.testing.assert_allclose(out.max(), 1.0, atol=1e-5)


def test_gradients_with_respect_to_the_box_match_finite_differences():
    images = tf.constant(np.random.default_rng(0).uniform(size=(1, 12, 12, 1)), tf.float32)
    weights = tf.constant(np.random.default_rng(1).normal(size=(1, 6, 6, 1)), tf.float32)
    sampler = blocks.BilinearSampler((6, 6))

    def loss(params):
        theta = blocks.box_transform(params[0:1], params[1:2], params[2:3])
        return tf.reduce_sum(sampler(images, theta) * weights)

    # A generic box, and boxes just off the whole image and its centred half: exactly on them
    # samples fall on whole pixels, where bilinear sampling has kinks (one-sided slopes).
    for point in ([0.53, 0.137, -0.211], [0.9973, 0.0031, -0.0047], [0.5013, 0.0029, 0.0017]):
        params = tf.constant(point)
        with tf.GradientTape() as tape:
            tape.watch(params)
            value = loss(params)
        analytic = tape.gradient(value, params).numpy()
        eps = 1e-3
        numeric = [(loss(params + eps * np.eye(3, dtype=np.float32)[k]) -
                    loss(params - eps * np.eye(3, dtype=np.float32)[k])).numpy() / (2 * eps)
                   for k in range(3)]
        np.testing.assert_allclose(analytic, numeric, rtol=5e-2, atol=5e-3, err_msg=str(point))


def test_a_box_half_outside_the_image_is_pulled_back_in_a_few_steps():
    params = tf.Variable([0.5, 3.0, -2.5])  # centre at s*t = (1.5, -1.25): half outside
    optimizer = tf.keras.optimizers.SGD(0.1)
    for _ in range(5):
        with tf.GradientTape() as tape:
            penalty = tf.reduce_sum(blocks.box_outside_penalty(params[0], params[1], params[2]))
        optimizer.apply_gradients([(tape.gradient(penalty, params), params)])
    s, tx, ty = params.numpy()
    assert abs(s * tx) <= 1.0 + 1e-6 and abs(s * ty) <= 1.0 + 1e-6
    inside = tf.reduce_sum(blocks.box_outside_penalty(0.5, 1.0, -1.0))
    assert float(inside) == 0.0  # no pull on a box that is inside


def test_the_centred_box_floor_is_the_untrained_transforms_box():
    from relattr_tf.models import boxes
    for scale in (0.33, 0.4, 1.0):
        np.testing.assert_allclose(boxes.centred_corners(scale, 2), boxes.box_corners(
            np.tile(blocks.box_transform([scale], [0.0], [0.0]).numpy().reshape(1, 6), (2, 1))),
            atol=1e-6)
