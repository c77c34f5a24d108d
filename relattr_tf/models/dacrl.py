"""DACRL: deep attentive cross-image representation learning (and its no-attention ablation).

    (image_a, image_b) -> shared VGG16 trunk -> concat channels [Ri, Rj]
      -> SE channel attention W_ij, F_ij = [Ri, Rj] * W_ij      (skipped when attention=False)
      -> cross-image conv fM -> pool -> FC head_units -> FC 1 -> sigmoid -> p = P(a shows more)
The model is asymmetric: (a, b) and (b, a) are different inputs (train with swapped pairs).
Everything after the trunk is one sub-model, the comparator, so evaluation can run the trunk
once per image and the comparator once per pair.
"""
import keras
from keras import layers

from relattr_tf.models import blocks
from relattr_tf.models.parts import ModelParts
from relattr_tf.models.vgg16 import build_vgg16_trunk


def build_comparator(feature_shape, attention=True, reduction=16, cross_filters=512,
                     cross_depth=1, head_units=1024, head_pool="gap", seed=None,
                     head_init="paper"):
    """(features_a, features_b) -> p: the attentive cross-image block and the prediction."""
    features_a = keras.Input(feature_shape, name="features_a")
    features_b = keras.Input(feature_shape, name="features_b")
    x = layers.Concatenate(axis=-1, name="cross_concat")([features_a, features_b])
    if attention:
        x = blocks.apply_channel_attention(x, reduction, name="attention", seed=seed,
                                           init=head_init)
    x = blocks.apply_cross_conv(x, cross_filters, cross_depth, name="cross", seed=seed,
                                init=head_init)
    x = blocks.apply_pool(x, head_pool, name="head")
    x = layers.Dense(head_units, activation="relu", name="head_fc",
                     **blocks.new_layer_initializers(seed, "head_fc", head_init))(x)
    logit = layers.Dense(1, name="head_logit", dtype="float32",
                         **blocks.new_layer_initializers(seed, "head_logit"))(x)
    p = layers.Activation("sigmoid", dtype="float32", name="p_sigmoid")(logit)
    p = blocks.ClipProbability(1e-7, dtype="float32", name="p")(p)
    return keras.Model([features_a, features_b], p, name="comparator")


def build_dacrl(image_size=224, width=1.0, attention=True, reduction=16, cross_filters=512,
                cross_depth=1, head_units=1024, head_pool="gap", seed=None, trunk_init="glorot",
                head_init="paper"):
    """DACRL as ModelParts: inputs (image_a, image_b) RGB in [0, 1], output p (B, 1)."""
    trunk = build_vgg16_trunk(image_size, width, init=trunk_init)
    comparator = build_comparator(trunk.output.shape[1:], attention, reduction, cross_filters,
                                  cross_depth, head_units, head_pool, seed, head_init)
    image_a = keras.Input((image_size, image_size, 3), name="image_a")
    image_b = keras.Input((image_size, image_size, 3), name="image_b")
    features_a, features_b = blocks.apply_siamese(trunk, image_a, image_b, name="siamese")
    p = comparator([features_a, features_b])
    name = "dacrl" if attention else "dacrl_noatt"
    network = keras.Model([image_a, image_b], p, name=name)
    # The same comparator up to its last Dense: the logit the loss is computed from.
    comparator_logit = keras.Model(comparator.inputs, comparator.get_layer("head_logit").output,
                                   name="comparator_logit")
    logits = keras.Model([image_a, image_b], comparator_logit([features_a, features_b]),
                         name=f"{name}_logits")
    return ModelParts(network, groups={"trunk": [trunk], "head": [comparator]},
                      trunk=trunk, encoder=trunk, comparator=comparator, logits=logits)
