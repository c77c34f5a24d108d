"""RankNet baseline: a score v per image from the VGG16 trunk; p = sigmoid(v_a - v_b).

The scorer (image -> v) is a sub-model, so a trained pair model also ranks single images (the
exported model has an image -> score endpoint) and evaluation scores each image once.
"""
import keras
from keras import layers

from relattr_tf.models import blocks
from relattr_tf.models.parts import ModelParts
from relattr_tf.models.vgg16 import build_vgg16_trunk


def build_ranknet(image_size=224, width=1.0, seed=None, trunk_init="glorot"):
    """RankNet as ModelParts: (image_a, image_b) -> p (B, 1)."""
    trunk = build_vgg16_trunk(image_size, width, init=trunk_init)
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.GlobalAveragePooling2D(name="score_gap")(trunk(image))
    score_layer = layers.Dense(1, name="score", dtype="float32",
                               **blocks.new_layer_initializers(seed, "score"))
    scorer = keras.Model(image, score_layer(x), name="scorer")
    network = blocks.score_pair_model(scorer, image_size, name="ranknet")
    return ModelParts(network, groups={"trunk": [trunk], "head": [score_layer]},
                      trunk=trunk, scorer=scorer, logits=blocks.score_pair_logits(network))
