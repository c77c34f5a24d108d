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

from relattr_tf.models import strength_scale
from relattr_tf.models.blocks import layer_seed
from relattr_tf.models.strength_scale import StrengthScale

IMAGES = ("a", "b")


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
        outputs.append(StrengthScale(y_size, "destandardize", name=f"y_{image}", dtype="float32")(x))
    control = keras.Model(q, outputs, name="control")
    if mean is not None:
        set_strength_scale(control, mean, std)
    return control


def set_strength_scale(control, mean, std):
    """Stores the generator's strength mean and std in both destandardising layers; an unknown
    statistic (NaN) becomes 0 mean, unit std."""
    strength_scale.set_statistics(control, mean, std, "destandardize")


def split_latents(q):
    """(z^A, z^B): the two halves of the slots' q."""
    half = ops.shape(q)[-1] // 2
    return q[:, :half], q[:, half:]


def inferred_target(y_a, y_b):
    """1 where y^A > y^B, 0 where less, 0.5 on a tie: the label the control's y implies."""
    return ops.cast(y_a > y_b, "float32") + 0.5 * ops.cast(ops.equal(y_a, y_b), "float32")
