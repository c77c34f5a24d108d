"""Fitting the oracle generator (models.oracle_renderer) to the benchmark's measurements.

The oracle first draws `count` pictures with uniform latents (an identity strength map), the
benchmark's `measure` reads them, and the measured -> latent map is fitted on those readings
(data.synthetic.calibration). A requested strength is then what `measure` reads on the
oracle's own pictures, at the median.
"""
import numpy as np
import tensorflow as tf

from relattr_tf.data.synthetic import calibration, render
from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES
from relattr_tf.data.synthetic.measure import measure
from relattr_tf.models import oracle_renderer

IDENTITY = {name: [[0.0, 1.0], [0.0, 1.0]] for name in ATTRIBUTE_NAMES}


def draw(decoder, y, z, batch_size=128):
    """uint8 pictures (N, S, S, 3) of a decoder for strengths y and latents z."""
    out = []
    for start in range(0, len(y), batch_size):
        mean, _ = decoder([tf.constant(y[start:start + batch_size], tf.float32),
                           tf.constant(z[start:start + batch_size], tf.float32)])
        out.append(render.to_uint8((np.asarray(mean) + 1.0) / 2.0))
    return np.concatenate(out)


def calibrated_oracle(image_size, count=3000, seed=0, progress=None):
    """(decoder, strength statistics of the calibration pictures, knots)."""
    rng = np.random.default_rng([seed, 13])
    latents = rng.uniform(0.0, 1.0, (count, len(ATTRIBUTE_NAMES)))
    z = rng.normal(size=(count, oracle_renderer.Z_SIZE))
    pictures = draw(oracle_renderer.build_oracle_decoder(image_size, IDENTITY), latents, z)
    measured = []
    for i, picture in enumerate(pictures):
        measured.append(measure(picture))
        if progress and (i + 1) % 500 == 0:
            progress(f"calibration: {i + 1} of {count} pictures measured")
    measured = np.stack(measured)
    knots = calibration.fit_knots(latents, measured)
    decoder = oracle_renderer.build_oracle_decoder(image_size, knots)
    return decoder, calibration.strength_statistics(measured), knots
