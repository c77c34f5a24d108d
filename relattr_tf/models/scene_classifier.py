"""The pretraining network: the VGG16 trunk with one classifier head per label of a labelled
image table (the embedded benchmark's stand-in for ImageNet classification).

image -> trunk -> flatten -> FC (ReLU, dropout) -> {head name: logits}. Flatten, not global
pooling, so heads about where things are (the subject's grid cell) can be learned.
"""
import keras
from keras import layers

from relattr_tf.models import blocks
from relattr_tf.models.parts import ModelParts
from relattr_tf.models.vgg16 import build_vgg16_trunk


def build_scene_classifier(image_size, width, heads, head_units=1024, seed=None,
                           trunk_init="glorot", dropout=0.5):
    """ModelParts: image -> {head: logits (B, size)}; heads as a table's label_heads."""
    trunk = build_vgg16_trunk(image_size, width, init=trunk_init)
    image = keras.Input((image_size, image_size, 3), name="image")
    hidden = layers.Dense(head_units, activation="relu", name="scene_fc",
                          kernel_initializer=keras.initializers.HeNormal(
                              seed=blocks.layer_seed(seed, "scene_fc")))
    x = layers.Flatten(name="scene_flatten")(trunk(image))
    x = layers.Dropout(dropout, seed=blocks.layer_seed(seed, "scene_dropout"),
                       name="scene_dropout")(hidden(x))
    # The classifiers start small, N(0, 0.01) as torchvision's VGG, so every head starts
    # near its chance loss when the trunk starts near unit scale.
    head_layers = [layers.Dense(h["size"], name=f"head_{h['name']}", dtype="float32",
                                kernel_initializer=keras.initializers.RandomNormal(
                                    stddev=0.01, seed=blocks.layer_seed(seed, h["name"])))
                   for h in heads]
    outputs = {h["name"]: layer(x) for h, layer in zip(heads, head_layers)}
    network = keras.Model(image, outputs, name="scene_classifier")
    return ModelParts(network, groups={"trunk": [trunk], "head": [hidden] + head_layers},
                             trunk=trunk)
