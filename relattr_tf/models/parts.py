"""ModelParts: a built network and the parts training, export and evaluation need."""
import dataclasses

import keras


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
    logits: (image_a, image_b) -> the logit of p (B, 1), sharing the network's weights: the
      loss is computed from it, since p is clipped and a clipped p has no gradient.
    """
    network: keras.Model
    groups: dict
    trunk: keras.Model = None
    scorer: keras.Model = None
    encoder: keras.Model = None
    comparator: keras.Model = None
    localizer: keras.Model = None
    logits: keras.Model = None

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
