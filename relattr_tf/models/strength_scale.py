"""One layer for attribute strengths and their standard scale: (y - mean) / std one way, x * std
+ mean the other, with the statistics stored as weights so they travel with the model.

The CVAE standardises the raw strengths it is given; ATTIC's control net maps its outputs back
to raw strengths the generator has seen. Computes in the layer's dtype (float32 where it is
made so: float16 would round a strength near 1 to steps of 0.001-0.004).
"""
import keras
import numpy as np
from keras import layers, ops

from relattr_tf.models.blocks import PACKAGE

DIRECTIONS = ("standardize", "destandardize")


@keras.saving.register_keras_serializable(package=PACKAGE)
class StrengthScale(layers.Layer):
    """standardize: (y - mean) / std, an unknown strength (NaN) becoming 0, the mean;
    destandardize: x * std + mean."""

    def __init__(self, size, direction="standardize", **kwargs):
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.size, self.direction = size, direction
        self.mean = self.add_weight(shape=(size,), initializer="zeros", trainable=False,
                                    name="mean")
        self.std = self.add_weight(shape=(size,), initializer="ones", trainable=False,
                                   name="std")

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        mean, std = ops.cast(self.mean, x.dtype), ops.cast(self.std, x.dtype)
        if self.direction == "destandardize":
            return x * std + mean
        standard = (x - mean) / std
        return ops.where(ops.isnan(standard), ops.zeros_like(standard), standard)

    def get_config(self):
        return dict(super().get_config(), size=self.size, direction=self.direction)


# The names earlier .keras files were saved with (their configs hold only `size`).
@keras.saving.register_keras_serializable(package=PACKAGE)
class Standardize(StrengthScale):
    def __init__(self, size, direction="standardize", **kwargs):
        super().__init__(size, "standardize", **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Destandardize(StrengthScale):
    def __init__(self, size, direction="destandardize", **kwargs):
        super().__init__(size, "destandardize", **kwargs)


def scale_layers(model, direction):
    return [layer for layer in model.layers
            if isinstance(layer, StrengthScale) and layer.direction == direction]


def set_statistics(model, mean, std, direction="standardize"):
    """Stores strength statistics in every `direction` layer of a model; an unknown statistic
    (NaN) becomes 0 mean, and a non-positive or unknown std 1."""
    mean = np.nan_to_num(np.asarray(mean, np.float32), nan=0.0)
    std = np.asarray(std, np.float32)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0).astype(np.float32)
    found = scale_layers(model, direction)
    if not found:
        raise ValueError(f"{model.name} has no {direction} StrengthScale layer")
    for layer in found:
        layer.set_weights([mean, std])


def statistics_of(model, direction="standardize"):
    """(mean, std) numpy arrays of a model's first `direction` layer."""
    found = scale_layers(model, direction)
    if not found:
        raise ValueError(f"{model.name} has no {direction} StrengthScale layer")
    return tuple(np.asarray(w) for w in found[0].get_weights())
