"""Model registry: `--model` names -> functional model builders that declare their parts."""
import dataclasses

import keras

from relattr_tf.models import control, cvae  # noqa: F401  register their layers for safe loading
from relattr_tf.models.dacrl import build_dacrl
from relattr_tf.models.deepstn import build_deepstn
from relattr_tf.models.ranknet import build_ranknet

PAIR_MODELS = ("dacrl", "dacrl_noatt", "ranknet", "deepstn_crop", "deepstn")


@dataclasses.dataclass
class ModelParts:
    """A built network and the parts training, export and evaluation need.

    groups: parameter group -> the layers (or sub-models) whose weights it trains; each
      trainable weight belongs to exactly one group, and configuration maps groups to
      learning rates (the trunk slower than the new layers, as the papers train them).
    trunk: the VGG16 trunk (ImageNet weights load into it).
    scorer: image -> score v, for models with p = sigmoid(v_a - v_b) (RankNet): evaluation
      scores each image once.
    encoder, comparator: image -> features and (features_a, features_b) -> p, for models that
      compare feature maps (DACRL): evaluation encodes each image once.
    localizer: image -> the transform theta (B, 6) of the region a model looks at (DeepSTN).
    """
    network: keras.Model
    groups: dict
    trunk: keras.Model = None
    scorer: keras.Model = None
    encoder: keras.Model = None
    comparator: keras.Model = None
    localizer: keras.Model = None

    def group_variables(self):
        """{group: trainable variables}; each variable in exactly one group (checked)."""
        out, owner = {}, {}
        for group, parts in self.groups.items():
            out[group] = []
            for part in parts:
                for v in part.trainable_variables:
                    if id(v) in owner:
                        raise ValueError(f"{v.path} is in parameter groups {owner[id(v)]} and "
                                         f"{group}")
                    owner[id(v)] = group
                    out[group].append(v)
        missing = [v.path for v in self.network.trainable_variables if id(v) not in owner]
        if missing:
            raise ValueError(f"{self.network.name}: weights in no parameter group: "
                             f"{', '.join(missing[:5])}")
        return out


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
