"""ATTIC's control net: a synthetic pair slot's q ~ N(0, I) -> the strengths (y^A, y^B) the
frozen generator draws the pair with (Yu & Grauman, ICCV 2017; aronyu/ATTIC).

    q -> FC shared (ReLU) -> per image: FC (ReLU) -> FC -> BatchNorm -> * std + mean -> y
    z^A, z^B = the two halves of q (passed straight through, as the reference)

He initialisation throughout. The BatchNorm is synchronised across replicas (its statistics
are the global batch's), and the last step puts y where the generator has seen data: scaled by
the standard deviation of its training strengths and shifted by their mean, stored as weights.
"""
import keras
from keras import layers, ops

from relattr_tf.models.blocks import PACKAGE, layer_seed

IMAGES = ("a", "b")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Destandardize(layers.Layer):
    """x * std + mean with stored statistics (the generator's training strengths), float32."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.mean = self.add_weight(shape=(size,), initializer="zeros", trainable=False,
                                    name="mean")
        self.std = self.add_weight(shape=(size,), initializer="ones", trainable=False,
                                   name="std")

    def call(self, x):
        x = ops.cast(x, "float32")
        return x * self.std + self.mean

    def get_config(self):
        return dict(super().get_config(), size=self.size)


def _dense(units, name, seed, activation=None):
    return layers.Dense(units, activation=activation, name=name,
                        kernel_initializer=keras.initializers.HeNormal(layer_seed(seed, name)))


def build_control(q_size, y_size, units=512, head_units=256, seed=None, mean=None, std=None):
    """q (B, q_size) -> [y_a, y_b] (B, y_size) each, raw strengths for the generator."""
    q = keras.Input((q_size,), name="q")
    shared = _dense(units, "control_shared", seed, "relu")(q)
    outputs = []
    for image in IMAGES:
        x = _dense(head_units, f"control_{image}_fc1", seed, "relu")(shared)
        x = _dense(y_size, f"control_{image}_fc2", seed)(x)
        x = layers.BatchNormalization(synchronized=True, name=f"control_{image}_bn")(x)
        outputs.append(Destandardize(y_size, name=f"y_{image}", dtype="float32")(x))
    control = keras.Model(q, outputs, name="control")
    if mean is not None:
        set_strength_scale(control, mean, std)
    return control


def set_strength_scale(control, mean, std):
    """Stores the generator's strength mean and std in both Destandardize layers; an unknown
    statistic (NaN) becomes 0 mean, unit std."""
    import numpy as np
    mean = np.nan_to_num(np.asarray(mean, np.float32), nan=0.0)
    std = np.asarray(std, np.float32)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0).astype(np.float32)
    for image in IMAGES:
        control.get_layer(f"y_{image}").set_weights([mean, std])


def split_latents(q):
    """(z^A, z^B): the two halves of the slots' q."""
    half = ops.shape(q)[-1] // 2
    return q[:, :half], q[:, half:]
