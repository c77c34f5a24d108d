"""The oracle generator: the embedded benchmark's renderer ported to TensorFlow, (y, z) -> image,
with soft edges so that the image is differentiable in every strength.

It is not the paper's generator (Attribute2Image learns its decoder); it draws the benchmark's
own scenes, so ATTIC's loop can be measured apart from any learned generator's faults. It has
the learned decoder's interface: inputs raw strengths y (measured units, ordered as
ATTRIBUTE_NAMES) and z ~ N(0, I) (Z_SIZE), outputs (mean image in [-1, 1], log-variance).

  * y -> latents: each measured strength goes through the monotone measured -> latent map
    the calibration fitted (data.synthetic.calibration), piecewise linear, so a requested
    strength is what `measure` reads on average. An unreadable strength (NaN) is latent 0.5.
  * z -> nuisance: Phi(z) gives uniforms for what numpy's renderer draws from its rng: the
    background's level, texture amplitude, orientation, frequency and phases; 1-3 distractors
    each with its own shape, stripes, position, colour and angle; the subject's position and
    colour jitter; the light's direction and strength; a noise seed.
  * Shapes: the superellipse's inside test becomes a sigmoid of its signed distance in pixels
    (EDGE_PX), stripes a steep sigmoid of the sine. Drawn at the image's own size: the soft
    edge does what the numpy renderer's 2x supersampling and box filter do.
"""
import math

import keras
import numpy as np
import tensorflow as tf

from relattr_tf.data.synthetic import render
from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES

EDGE_PX = 0.3  # the soft edge's scale: a sigmoid of (signed distance / EDGE_PX)
STRIPE_SHARPNESS = 8.0  # sigmoid(sharpness * sine): nearly the numpy renderer's step
MAX_DISTRACTORS = 3
NOISE_STD = 0.012
# z's columns, each a standard normal turned uniform by the normal CDF.
BACKGROUND = ("grey", "amplitude", "orientation", "cycles", "phase_1", "phase_2")
DISTRACTOR = ("size", "elongation", "pointy", "stripes", "tilt", "x", "y", "colour",
              "angle_jitter", "striped")
SUBJECT = ("x", "y", "red", "green", "blue")
LIGHT = ("direction", "strength")
Z_NAMES = (tuple(f"background_{n}" for n in BACKGROUND) + ("distractor_count",) +
           tuple(f"distractor{k}_{n}" for k in range(MAX_DISTRACTORS) for n in DISTRACTOR) +
           tuple(f"subject_{n}" for n in SUBJECT) + tuple(f"light_{n}" for n in LIGHT) +
           ("noise_seed",))
Z_SIZE = len(Z_NAMES)
COLUMN = {name: i for i, name in enumerate(Z_NAMES)}


def _interp(x, xp, fp):
    """Piecewise-linear interpolation of x (B,) on ascending knots xp -> fp, clamped at the
    ends; differentiable in x between knots."""
    x = tf.clip_by_value(x, xp[0], xp[-1])
    index = tf.clip_by_value(tf.searchsorted(xp, x, side="right") - 1, 0, fp.shape[0] - 2)
    x0, x1 = tf.gather(xp, index), tf.gather(xp, index + 1)
    f0, f1 = tf.gather(fp, index), tf.gather(fp, index + 1)
    return f0 + (f1 - f0) * (x - x0) / tf.maximum(x1 - x0, 1e-12)


def _shape(v, size, scale=1.0):
    """render.local_parameters in TensorFlow: latents (B,) each -> semi-axes a, b (pixels),
    exponent, stripe depth, angle (radians)."""
    radius = (0.07 + 0.08 * v["size"]) * size
    elongation = 1.0 + 1.5 * v["elongation"]
    exponent = 2.0 * (0.75 / 2.0) ** v["pointy"]
    fill = tf.exp(2 * tf.math.lgamma(1 + 1 / exponent) - tf.math.lgamma(1 + 2 / exponent))
    ab = math.pi * radius ** 2 / (4 * fill)
    a, b = tf.sqrt(ab * elongation) * scale, tf.sqrt(ab / elongation) * scale
    return a, b, exponent, 0.5 * v["stripes"], v["tilt"] * math.radians(80.0)


def _paint(canvas, xx, yy, colour, cx, cy, a, b, exponent, angle, stripes, size, weight):
    """Composites one soft superellipse (per example parameters, (B,)) over canvas (B,S,S,3)."""
    e = lambda t: t[:, None, None]  # noqa: E731
    dx, dy = xx - e(cx), -(yy - e(cy))
    cos, sin = e(tf.cos(angle)), e(tf.sin(angle))
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    n = e(exponent)
    radius = (tf.abs(u / e(a)) + 1e-4) ** n + (tf.abs(v / e(b)) + 1e-4) ** n
    radius = radius ** (1 / n)
    inside = tf.sigmoid((1 - radius) * e(tf.minimum(a, b)) / EDGE_PX) * e(weight)
    period = render.STRIPE_PERIOD * size
    shade = 1 - e(stripes) * tf.sigmoid(STRIPE_SHARPNESS * tf.sin(2 * math.pi * u / period))
    painted = colour[:, None, None, :] * shade[..., None]
    return canvas * (1 - inside[..., None]) + painted * inside[..., None]


def _hash_noise(seed, size):
    """Deterministic N(0, 1) noise (B,S,S,3) from one uniform per example: a sine hash of the
    pixel and channel, through the inverse normal CDF."""
    i, j, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    base = tf.constant(i * 12.9898 + j * 78.233 + c * 37.719, tf.float32)
    h = tf.sin(base[None] + seed[:, None, None, None] * 1013.0) * 43758.5453
    h = tf.clip_by_value(h - tf.floor(h), 1e-4, 1 - 1e-4)
    return math.sqrt(2.0) * tf.math.erfinv(2 * h - 1)


@keras.saving.register_keras_serializable(package="relattr_tf")
class OracleRender(keras.layers.Layer):
    """[raw y (B, 8), z (B, Z_SIZE)] -> [mean image in [-1, 1], log-variance (zeros)].

    knots: {attribute: [measured values ascending, their latents]} from the calibration."""

    def __init__(self, image_size, knots, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.knots = int(image_size), {k: [list(map(float, v[0])),
                                                            list(map(float, v[1]))]
                                                        for k, v in knots.items()}

    def latents(self, y):
        """Raw measured strengths (B, 8) -> latents in [0, 1], {name: (B,)}."""
        out = {}
        for k, name in enumerate(ATTRIBUTE_NAMES):
            column = tf.cast(y[:, k], tf.float32)
            measured, latent = (tf.constant(v, tf.float32) for v in self.knots[name])
            value = _interp(tf.where(tf.math.is_finite(column), column, measured[0]),
                            measured, latent)
            out[name] = tf.where(tf.math.is_finite(column), value, 0.5)
        return out

    def call(self, inputs):
        y, z = inputs
        size = self.image_size
        u = tf.clip_by_value(0.5 * (1 + tf.math.erf(tf.cast(z, tf.float32) / math.sqrt(2.0))),
                             1e-6, 1 - 1e-6)
        col = lambda name: u[:, COLUMN[name]]  # noqa: E731
        lerp = lambda name, lo, hi: lo + (hi - lo) * col(name)  # noqa: E731
        v = self.latents(y)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        xx, yy = tf.constant(xx)[None], tf.constant(yy)[None]

        # Background, as render.render with the benchmark's scenery.
        scenery = render.BENCHMARK_SCENERY
        grey = lerp("background_grey", *scenery.grey)[:, None, None]
        amp = lerp("background_amplitude", *scenery.texture_amplitude)[:, None, None]
        theta = lerp("background_orientation", 0.0, math.pi)[:, None, None]
        cycles = lerp("background_cycles", 3.0, 7.0)[:, None, None] / size
        phase_1 = lerp("background_phase_1", 0.0, 2 * math.pi)[:, None, None]
        phase_2 = lerp("background_phase_2", 0.0, 2 * math.pi)[:, None, None]
        t = xx * tf.cos(theta) + yy * tf.sin(theta)
        t2 = -xx * tf.sin(theta) + yy * tf.cos(theta)
        texture = 0.6 * tf.sin(2 * math.pi * cycles * t + phase_1) + 0.4 * tf.sin(
            2 * math.pi * 2.3 * cycles * t2 + phase_2)
        canvas = tf.repeat((grey + amp * texture)[..., None], 3, axis=-1)

        count = 1 + tf.floor(col("distractor_count") * MAX_DISTRACTORS)
        palette = tf.constant(render.DISTRACTOR_RGB, tf.float32)
        for k in range(MAX_DISTRACTORS):
            name = f"distractor{k}_"
            d = {a: col(name + a) for a in ("size", "elongation", "pointy", "stripes", "tilt")}
            a, b, exponent, stripes, angle = _shape(d, size, scale=0.8)
            index = tf.cast(tf.minimum(col(name + "colour") * len(render.DISTRACTOR_RGB),
                                       len(render.DISTRACTOR_RGB) - 1), tf.int32)
            canvas = _paint(canvas, xx, yy, tf.gather(palette, index),
                            col(name + "x") * size, col(name + "y") * size, a, b, exponent,
                            angle + lerp(name + "angle_jitter", -1.0, 1.0),
                            stripes * tf.round(col(name + "striped")), size,
                            tf.cast(count > k, tf.float32))

        a, b, exponent, stripes, angle = _shape(v, size)
        reach = tf.minimum(tf.maximum(a, b) + 2.0, size / 2)
        cx = reach + col("subject_x") * (size - 2 * reach)
        cy = reach + col("subject_y") * (size - 2 * reach)
        colour = tf.constant(render.SUBJECT_RGB, tf.float32)[None] + tf.stack(
            [lerp(f"subject_{c}", -0.05, 0.05) for c in ("red", "green", "blue")], axis=1)
        canvas = _paint(canvas, xx, yy, colour, cx, cy, a, b, exponent, angle, stripes, size,
                        tf.ones_like(cx))

        # Global attributes, lighting and sensor noise.
        e = lambda t: t[:, None, None, None]  # noqa: E731
        contrast = 0.5 + 0.9 * v["contrast"]
        brightness = -0.18 + 0.36 * v["brightness"]
        warmth = -0.25 + 0.5 * v["warmth"]
        image = 0.5 + (canvas - 0.5) * e(contrast) + e(brightness)
        image = image * tf.stack([1 + warmth, tf.ones_like(warmth), 1 - warmth],
                                 axis=1)[:, None, None, :]
        gy, gx = (np.mgrid[0:size, 0:size] / size - 0.5).astype(np.float32)
        direction = lerp("light_direction", 0.0, 2 * math.pi)[:, None, None]
        strength = lerp("light_strength", 0.0, scenery.light)[:, None, None]
        light = 1.0 + strength * (gx[None] * tf.cos(direction) + gy[None] * tf.sin(direction))
        seed = tf.stop_gradient(col("noise_seed"))  # a hash: its gradient means nothing
        image = image * light[..., None] + NOISE_STD * _hash_noise(seed, size)
        image = tf.clip_by_value(image, 0.0, 1.0)
        return [2.0 * image - 1.0, tf.zeros_like(image)]

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0][0], self.image_size, self.image_size, 3)
        return [shape, shape]

    def get_config(self):
        return dict(super().get_config(), image_size=self.image_size, knots=self.knots)


def build_oracle_decoder(image_size, knots):
    """keras.Model [y, z] -> [mean in [-1, 1], log-variance]: the learned decoder's interface."""
    y = keras.Input((len(ATTRIBUTE_NAMES),), name="y")
    z = keras.Input((Z_SIZE,), name="z")
    mean, logvar = OracleRender(image_size, knots, name="oracle_render", dtype="float32")([y, z])
    return keras.Model([y, z], [mean, logvar], name="oracle_decoder")
