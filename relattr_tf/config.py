"""Typed training configuration, built once from flags in `train.main` and passed down."""
import dataclasses
import json
import os


# Fields that fix the network's shape: a model_dir can only be resumed with the same values.
ARCHITECTURE_FIELDS = ("model", "image_size", "width", "reduction", "cross_filters",
                       "cross_depth", "head_units", "head_pool")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data_dir: str = "data/synthetic"
    attribute: str = "brightness"
    model: str = "dacrl"
    image_size: int = 64
    width: float = 1.0
    reduction: int = 16
    cross_filters: int = 512
    cross_depth: int = 1
    head_units: int = 1024
    head_pool: str = "gap"
    backbone_weights: str = ""
    optimizer: str = "rmsprop"
    trunk_lr: float = 5e-5
    head_lr: float = 5e-4
    weight_decay: float = 5e-4
    lr_drop_epochs: tuple = (5, 12)
    lr_drop_factor: float = 10.0
    epochs: int = 16
    steps_per_epoch: int = 0  # 0: one pass over the (swapped) training pairs
    batch_size: int = 24
    train_split: str = "train"
    val_split: str = ""  # "": the first eval split
    val_steps: int = 0  # 0: the whole validation split
    eval_splits: tuple = ("test",)
    augment: tuple = ("flip", "translate")
    swap: bool = True
    cache: bool = True
    skip_corrupt: bool = False
    strategy: str = "default"
    mixed_precision: str = "float32"
    jit_compile: bool = False
    seed: int = 0
    deterministic: bool = False
    tensorboard_pairs: int = 4
    progress: str = "line"
    make_data: bool = False  # build the embedded benchmark first if data_dir has none
    make_data_args: str = ""

    def input_config(self):
        # Imported here so that the commands can set TensorFlow's environment before its import.
        from relattr_tf.data.pipeline import InputConfig
        return InputConfig(batch_size=self.batch_size, image_size=self.image_size,
                           augment=tuple(self.augment), swap=self.swap, cache=self.cache,
                           skip_corrupt=self.skip_corrupt)

    def architecture(self):
        return {k: getattr(self, k) for k in ARCHITECTURE_FIELDS}

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def hparams(self):
        """Scalar hyper-parameters for TensorBoard's HParams dashboard."""
        out = {}
        for k, v in dataclasses.asdict(self).items():
            if isinstance(v, (tuple, list)):
                v = ",".join(str(x) for x in v)
            out[k] = v
        return out


def load_run_config(model_dir):
    """The TrainConfig saved in a model_dir by training."""
    import tensorflow as tf
    path = os.path.join(model_dir, "config.json")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no trained model here (train with python -m "
                                f"relattr_tf.train --model_dir={model_dir} ...)")
    with tf.io.gfile.GFile(path) as f:
        values = json.load(f)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in fields}
    return TrainConfig(**values)
