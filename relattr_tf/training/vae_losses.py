"""The VAE loss terms of the generators (Attribute2Image, plain and layered), per image."""
import numpy as np
from keras import ops

LOG_2PI = float(np.log(2 * np.pi))


def gaussian_nll(x, mean, logvar):
    """-log N(x; mean, exp(logvar)) summed over each image's pixels: (B,)."""
    per_pixel = 0.5 * (LOG_2PI + logvar + ops.square(x - mean) * ops.exp(-logvar))
    return ops.sum(ops.reshape(per_pixel, (ops.shape(x)[0], -1)), axis=-1)


def smooth_l1(x, mean):
    """SmoothL1 (Huber, beta 1, as Torch's SmoothL1Criterion) summed over each image: (B,)."""
    d = ops.abs(x - mean)
    per_pixel = ops.where(d < 1.0, 0.5 * ops.square(d), d - 0.5)
    return ops.sum(ops.reshape(per_pixel, (ops.shape(x)[0], -1)), axis=-1)


def reconstruction_nll(likelihood, x, mean, logvar, sigma=0.05):
    """The reconstruction term per image (B,): -log N with the decoder's variance or a fixed
    sigma, or SmoothL1."""
    if likelihood == "learned_gaussian":
        return gaussian_nll(x, mean, logvar)
    if likelihood == "fixed_gaussian":
        return gaussian_nll(x, mean, ops.full_like(mean, 2.0 * float(np.log(sigma))))
    if likelihood == "smooth_l1":
        return smooth_l1(x, mean)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over z: (B,)."""
    return 0.5 * ops.sum(ops.square(mean) + ops.exp(logvar) - 1.0 - logvar, axis=-1)
