"""Model registry: `--model` names -> functional model builders."""
import keras

from relattr_tf.models.dacrl import build_dacrl
from relattr_tf.models.ranknet import build_ranknet

MODELS = ("dacrl", "dacrl_noatt", "ranknet")


def build_model(name, *, image_size, width, seed=None, reduction=16, cross_filters=512,
                cross_depth=1, head_units=1024, head_pool="gap"):
    """Builds the pair model `name`: inputs (image_a, image_b), output p = P(a shows more)."""
    if name in ("dacrl", "dacrl_noatt"):
        return build_dacrl(image_size, width, attention=name == "dacrl", reduction=reduction,
                           cross_filters=cross_filters, cross_depth=cross_depth,
                           head_units=head_units, head_pool=head_pool, seed=seed)
    if name == "ranknet":
        return build_ranknet(image_size, width, seed=seed)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def trunk_of(network):
    """The VGG16 trunk inside a pair model (nested in the scorer for RankNet)."""
    for layer in network.layers:
        if layer.name == "trunk":
            return layer
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                if inner.name == "trunk":
                    return inner
    raise ValueError(f"{network.name} has no layer named 'trunk'")
