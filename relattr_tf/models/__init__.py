"""Model registry: `--model` names -> functional model builders that declare their parts."""
from relattr_tf.models import (  # noqa: F401  registers their layers
    control, cvae, layered_cvae, oracle_renderer, strength_scale)
from relattr_tf.models.dacrl import build_dacrl
from relattr_tf.models.deepstn import build_deepstn
from relattr_tf.models.parts import ModelParts  # noqa: F401  re-exported
from relattr_tf.models.ranknet import build_ranknet

PAIR_MODELS = ("dacrl", "dacrl_noatt", "ranknet", "deepstn_crop", "deepstn")


def build_model(name, *, image_size, width, seed=None, reduction=16, cross_filters=512,
                cross_depth=1, head_units=1024, head_pool="gap", box_scale_init=0.33,
                stn_transform="box", trunk_init="glorot", head_init="paper"):
    """Builds the pair model `name` (inputs (image_a, image_b), output p = P(a shows more)).
    trunk_init: the VGG16 trunk's initialisation when no weights are loaded into it."""
    if name in ("dacrl", "dacrl_noatt"):
        return build_dacrl(image_size, width, attention=name == "dacrl", reduction=reduction,
                           cross_filters=cross_filters, cross_depth=cross_depth,
                           head_units=head_units, head_pool=head_pool, seed=seed,
                           trunk_init=trunk_init, head_init=head_init)
    if name == "ranknet":
        return build_ranknet(image_size, width, seed=seed, trunk_init=trunk_init)
    if name in ("deepstn", "deepstn_crop"):
        return build_deepstn(image_size, width, crop_only=name == "deepstn_crop",
                             scale_init=box_scale_init, seed=seed, transform=stn_transform,
                             trunk_init=trunk_init)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(PAIR_MODELS)}")
