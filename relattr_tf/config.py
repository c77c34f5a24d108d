"""The one configuration definition: typed sections whose fields generate the command flags.
A `Config` holds the settings every model shares (`data`, `train`) and its model family's
(`family`: `RankerConfig` for the pair rankers); other families' are neither saved with a run
nor compared when it resumes. Every field is declared once, with `setting(...)` (default, help,
range, role); config_flags makes one absl flag per field and builds the Config back from them.
"""
import dataclasses
import json


class ConfigError(ValueError):
    """A configuration that cannot run, with a one-line message."""


def setting(default, help, *, lower=None, upper=None, choices=None, compared=True,
            architecture=False):
    """A config field. compared=False: may change freely between a run and its resumption
    (display, logging); architecture=True: fixes the network, so a resume must keep it."""
    kind = dict(default_factory=lambda: default) if isinstance(default, list) else dict(
        default=default)
    return dataclasses.field(**kind, metadata=dict(
        help=help, lower=lower, upper=upper, choices=choices, compared=compared,
        architecture=architecture))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data_dir: str = setting("data/synthetic", "Data directory (metadata.json, image tables, "
                            "pair splits).")
    image_size: int = setting(64, "Input size; images are resized to it.", lower=32,
                              upper=1024, architecture=True)
    augment: tuple = setting(("flip", "translate"), "Training augmentations: flip, translate, "
                             "crop.", choices=("flip", "translate", "crop"))
    image_memory_mb: int = setting(2048, "Keep decoded images in memory up to this size; "
                                   "beyond it they stay encoded and are decoded on use.",
                                   lower=1, compared=False)
    skip_corrupt: bool = setting(False, "Skip (and log) unreadable records.", compared=False)
    make_data: bool = setting(False, "Build the embedded benchmark in --data_dir first if it "
                              "has none.", compared=False)
    make_data_args: str = setting("", "Arguments for beam_jobs.make_synthetic when --make_data "
                                  "builds data.", compared=False)
    val_steps: int = setting(0, "Validation batches per epoch (0 = all).", lower=0, compared=False)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    optimizer: str = setting("rmsprop", "Optimizer of every parameter group.",
                             choices=("rmsprop", "adam", "adamw", "sgd"))
    weight_decay: float = setting(5e-4, "Kernels' weight decay.", lower=0.0, upper=1.0)
    weight_decay_mode: str = setting("l2", "l2: wd * w added to the gradient (Caffe, Torch); "
                                     "decoupled: w -= lr wd w.", choices=("l2", "decoupled"))
    rho: float = setting(0.9, "RMSProp's squared-gradient decay.", lower=0.0, upper=0.9999)
    epsilon: float = setting(1e-7, "Optimizer epsilon (RMSProp, Adam).", lower=0.0, upper=1.0)
    momentum: float = setting(0.9, "SGD momentum.", lower=0.0, upper=0.9999)
    lr_drop_epochs: tuple = setting((5, 12), "Divide learning rates by --lr_drop_factor after "
                                    "these many epochs.", lower=1)
    lr_drop_factor: float = setting(10.0, "Learning-rate drop factor.", lower=1.0)
    warmup_steps: int = setting(0, "Rates ramped linearly from 0 over these first steps.", lower=0)
    epochs: int = setting(16, "Epochs.", lower=1)
    steps_per_epoch: int = setting(0, "Steps per epoch (0: one pass over the data).", lower=0)
    batch_size: int = setting(24, "Global batch size (pairs or images).", lower=1)
    strategy: str = setting("default", "Distribution strategy.", choices=("default", "mirrored"))
    mixed_precision: str = setting("float32", "Keras dtype policy (mixed_float16: loss scaling).",
                                   choices=("float32", "mixed_float16", "mixed_bfloat16"))
    jit_compile: bool = setting(False, "XLA-compile the train step.")
    seed: int = setting(0, "Random seed (initial weights, data order, augmentation).", lower=0)
    deterministic: bool = setting(False, "TensorFlow op determinism (slower: its own kernels).")
    tensorboard_images: int = setting(4, "TensorBoard examples per epoch.", lower=0, compared=False)
    update_freq: int = setting(0, "TensorBoard batch summaries every N steps (0 = about ten "
                               "per epoch).", lower=0, compared=False)
    progress: str = setting("line", "Epoch line or bar.", choices=("line", "bar"), compared=False)


@dataclasses.dataclass(frozen=True)
class RankerConfig:
    """The pair rankers: DACRL, its no-attention ablation, RankNet and DeepSTN (their pair
    data and their networks)."""
    attribute: str = setting("brightness", "Attribute to train, or 'all' (one network each).")
    train_split: tuple = setting(("train",), "Training split(s); SPLIT:WEIGHT mixes several "
                                 "in every batch, e.g. train:1,synthetic-round-01:0.5.")
    val_split: str = setting("", "Validation split ('' = --val_fraction of the first training "
                             "split's pairs, held out of training); never an eval split.")
    val_fraction: float = setting(0.1, "Held-out validation share.", lower=0.01, upper=0.5)
    trunk_frozen_epochs: int = setting(0, "The trunk's rate is 0 for these first epochs.", lower=0)
    eval_split: tuple = setting(("test",), "Split(s) evaluated at the end.", compared=False)
    swap: bool = setting(True, "Also train every pair swapped, with target 1 - t.")
    width: float = setting(1.0, "VGG16 channel multiplier; 1 = the real VGG16.", lower=0.01,
                           upper=4.0, architecture=True)
    backbone_weights: str = setting("", "Local path of a VGG16 notop .h5 weight file: Keras' "
                                    "ImageNet one (--width=1) or one relattr_tf.pretrain "
                                    "wrote (its width).")
    trunk_init: str = setting("glorot", "Initialisation of a trunk trained from scratch: "
                              "glorot (Keras' VGG16) or he (keeps the signal's scale through the "
                              "13 ReLU layers).", choices=("glorot", "he"))
    trunk_lr: float = setting(5e-5, "Learning rate of the VGG16 trunk.", lower=0.0)
    head_lr: float = setting(5e-4, "Learning rate of every other layer.", lower=0.0)
    reduction: int = setting(16, "DACRL: attention reduction ratio.", lower=1, architecture=True)
    cross_filters: int = setting(512, "DACRL: filters of the cross-image conv.", lower=1,
                                 architecture=True)
    cross_depth: int = setting(1, "DACRL: layers of the cross-image conv.", lower=1, upper=8,
                               architecture=True)
    head_units: int = setting(1024, "DACRL: units of the prediction FC layer.", lower=1,
                              architecture=True)
    head_pool: str = setting("gap", "DACRL: pooling before the head.",
                             choices=("gap", "flatten"), architecture=True)
    head_init: str = setting("paper", "DACRL: initialisation of the attention, cross-image and "
                             "FC layers: paper (N(0, 0.01), biases 0.01) or he (He-normal, zero "
                             "biases; the output unit keeps the paper's).", choices=("paper", "he"))
    box_scale_init: float = setting(0.33, "DeepSTN: scale of the initial (centred) box.",
                                    lower=0.05, upper=1.0)
    localizer_lr_factor: float = setting(0.1, "DeepSTN: the localisation layers' learning "
                                         "rate as a multiple of --head_lr.", lower=0.0)
    init_from: str = setting("", "DeepSTN stage 2: a stage-1 model_dir whose localisation "
                             "layers start this model.")
    warm_start: str = setting("", "A finished model_dir of the same network whose trained "
                              "weights start this one (ATTIC's ranker restarts from its "
                              "pretrained state so).")
    stn_transform: str = setting("box", "DeepSTN: box (scale and translation, the reference) "
                                 "or affine (all six entries).", choices=("box", "affine"),
                                 architecture=True)

    DACRL_ONLY = ("reduction", "cross_filters", "cross_depth", "head_units", "head_pool",
                  "head_init")
    DEEPSTN_ONLY = ("box_scale_init", "localizer_lr_factor", "init_from", "stn_transform")

    def train_weights(self):
        """--train_split as {split: weight}."""
        weights = {}
        for item in self.train_split:
            split, _, weight = item.partition(":")
            try:
                weights[split] = float(weight) if weight else 1.0
            except ValueError:
                raise ConfigError(f"--train_split={item}: the weight after ':' must be a "
                                  f"number") from None
            if weights[split] <= 0:
                raise ConfigError(f"--train_split={item}: the weight must be positive")
        return weights

    def applies(self, model, name):
        """Whether a field means anything for `model` (RankNet has no cross-image head)."""
        if name == "reduction":
            return model == "dacrl"
        if name in self.DACRL_ONLY or name in self.DEEPSTN_ONLY:
            return model.startswith("dacrl" if name in self.DACRL_ONLY else "deepstn")
        return True


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """The VGG16 trunk pretrained on a labelled image table (the embedded benchmark's stand-in
    for ImageNet): what is in each picture, never how much of an attribute it shows."""
    pretrain_table: str = setting("pretrain", "Labelled image table it trains on.")
    validation_fraction: float = setting(0.1, "Held-out share of the table, by image id.",
                                         lower=0.01, upper=0.5)
    pretrain_heads: tuple = setting((), "Table heads to train; empty: all.", architecture=True)
    first_heads: tuple = setting((), "A curriculum: heads trained alone for the first "
                                 "--first_heads_steps steps, then the rest join.")
    first_heads_steps: int = setting(0, "Steps before the other heads join.", lower=0)
    balanced_heads: tuple = setting((), "Heads whose pull on the shared layers is scaled to "
                                    "the other heads'; each: every head's; empty: a plain sum.")
    balance_every: int = setting(1, "Steps between measurements of the pulls.", lower=1)
    width: float = setting(1.0, "VGG16 channel multiplier; 1 = the real VGG16.", lower=0.01,
                           upper=4.0, architecture=True)
    head_units: int = setting(1024, "FC units between trunk and heads.", lower=1, architecture=True)
    head_dropout: float = setting(0.5, "Dropout after that FC layer.", lower=0.0, upper=0.95)
    trunk_init: str = setting("glorot", "Initialisation of the trunk: glorot (Keras' VGG16) or "
                              "he.", choices=("glorot", "he"))
    trunk_lr: float = setting(5e-5, "Learning rate of the VGG16 trunk.", lower=0.0)
    head_lr: float = setting(5e-4, "Learning rate of every other layer.", lower=0.0)
    probe_tables: tuple = setting(("train", "test"), "Linear probe: image tables with "
                                  "attribute strengths to fit on, then to measure on.",
                                  compared=False)

    def check(self):
        if len(self.probe_tables) != 2:
            raise ConfigError(f"--probe_tables needs two tables (fit, measure), got "
                              f"{','.join(self.probe_tables)}")
        if bool(self.first_heads) != bool(self.first_heads_steps):
            raise ConfigError("--first_heads and --first_heads_steps go together")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Attribute2Image, the conditional VAE p(x | y, z) trained on single images with their
    attribute-strength vectors y (an image table, no pairs)."""
    image_table: str = setting("generator", "Image table with strength vectors it trains on.")
    validation_fraction: float = setting(0.1, "Held-out share of the table, by image id.",
                                         lower=0.01, upper=0.5)
    z_size: int = setting(256, "Size of the latent z (layered_cvae: the foreground's).", lower=1,
                          architecture=True)
    z_bg_size: int = setting(64, "layered_cvae: the background's latent size.", lower=1,
                             architecture=True)
    background_y: bool = setting(False, "layered_cvae: the background decoder reads y too.",
                                 architecture=True)
    cvae_width: float = setting(1.0, "Channel multiplier of every conv and FC layer; 1 = the "
                                "reference's.", lower=0.01, upper=4.0, architecture=True)
    fc_width: float = setting(0.0, "FC layers' multiplier (0: --cvae_width).", lower=0.0,
                              upper=4.0, architecture=True)
    coordconv: bool = setting(False, "Coordinate channels into every conv.", architecture=True)
    kl_weight: float = setting(1.0, "Weight of the KL term of the ELBO.", lower=0.0)
    kl_warmup_steps: int = setting(0, "KL weight ramped from 0 over these steps.", lower=0)
    likelihood: str = setting("learned_gaussian", "Reconstruction term (docs: Attribute2Image).",
                              choices=("learned_gaussian", "fixed_gaussian", "smooth_l1"))
    likelihood_sigma: float = setting(0.05, "fixed_gaussian's std, [-1, 1] units.", lower=1e-4)
    mask_weight: float = setting(0.3, "layered_cvae: weight of the gate's mask loss.", lower=0.0)
    generator_lr: float = setting(3e-4, "Encoder and decoder learning rate.", lower=0.0)
    sweep_steps: int = setting(9, "Evaluation: steps per sweep.", lower=2, compared=False)
    sweep_samples: int = setting(16, "Evaluation: sweeps per attribute.", lower=1, compared=False)
    eval_pairs: int = setting(400, "Evaluation: pairs per attribute.", lower=1, compared=False)
    goal_eval_every: int = setting(0, "Evaluate every N epochs; stop once every goal is met.",
                                   lower=0)


@dataclasses.dataclass(frozen=True)
class AtticConfig(RankerConfig):
    """ATTIC: a pair ranker (DeepSTN by default; the ranker settings above) trained against a
    control net that drives the frozen Attribute2Image decoder to imagine hard pairs, and the
    active loop that has those pairs labelled and retrains on them."""
    ranker_model: str = setting("deepstn", "The ranker's network (any pair model).",
                                choices=("dacrl", "dacrl_noatt", "ranknet", "deepstn_crop",
                                         "deepstn"), architecture=True)
    generator_dir: str = setting("runs/cvae_synth/generator", "The generator artifact "
                                 "(<cvae model_dir>/generator) whose frozen decoder draws the "
                                 "pairs.")
    generator_attribute: str = setting("", "The generator's attribute the pairs are about ('' "
                                       "= --attribute).")
    slots: int = setting(512, "Synthetic pair slots T: q ~ N(0, I) drawn once each and kept.",
                         lower=1, architecture=True)
    control_units: int = setting(512, "Control net: units of the shared FC layer.", lower=1,
                                 architecture=True)
    control_head_units: int = setting(256, "Control net: units of each image's hidden FC "
                                      "layer.", lower=1, architecture=True)
    control_lr: float = setting(1e-3, "Control net's learning rate at the start.", lower=0.0)
    control_lr_decay: float = setting(1e-4, "Inverse-time decay of the control's rate: lr / (1 "
                                      "+ decay * step).", lower=0.0)
    control_weight_decay: float = setting(0.01, "Control net's L2 weight decay.", lower=0.0)
    control_from: str = setting("", "A finished ATTIC model_dir whose control net and slots "
                                "start this one (the loop carries them over between rounds).")
    generated_batch: int = setting(8, "Freshly generated pairs per step (global batch), "
                                   "labelled from y^A vs y^B for the ranker.", lower=1)
    generated_weight: float = setting(1.0, "Weight of the ranker's loss on generated pairs "
                                      "beside its loss on the real and labelled pairs.",
                                      lower=0.0)
    synthetic_weight: float = setting(1.0, "The loop's mini-batches: how likely a labelled "
                                      "synthetic pair is drawn beside a real one (1 = every "
                                      "pair alike, so splits mix in proportion to their size).",
                                      lower=0.0)
    real_pairs: int = setting(0, "Real label budget: the loop draws this many pairs of the "
                              "first --train_split (seeded) as its real pairs; 0 = all.",
                              lower=0)
    min_agreement: float = setting(0.6, "Import: reject a pair whose majority answer has a "
                                   "smaller share of the answers.", lower=0.0, upper=1.0)
    min_confidence: float = setting(0.0, "Import: reject a pair whose mean confidence (0-1) is "
                                    "lower.", lower=0.0, upper=1.0)
    image_urls: str = setting("data", "Labelling package: images inside tasks.json as data "
                              "URIs, or as Label Studio local-file URLs under "
                              "--local_files_root.", choices=("data", "local"), compared=False)
    local_files_root: str = setting("", "Label Studio's LOCAL_FILES_DOCUMENT_ROOT, for "
                                    "--image_urls=local.", compared=False)

    def applies(self, model, name):
        own = name not in {f.name for f in dataclasses.fields(RankerConfig)}
        return own or super().applies(self.ranker_model, name)

    def check(self):
        if self.image_urls == "local" and not self.local_files_root:
            raise ConfigError("--image_urls=local needs --local_files_root (Label Studio's "
                              "LOCAL_FILES_DOCUMENT_ROOT)")


# Model families: section class and the --model names they train. Registered, so a new family
# (and a test's own task) adds itself without touching the others.
FAMILIES = {"ranker": (RankerConfig, ("dacrl", "dacrl_noatt", "ranknet", "deepstn_crop",
                                      "deepstn")),
            "pretrain": (PretrainConfig, ("vgg16_scenes",)),
            "generator": (GeneratorConfig, ("cvae", "layered_cvae")),
            "attic": (AtticConfig, ("attic",))}


def register_family(name, section, models):
    FAMILIES[name] = (section, tuple(models))


def family_of(model):
    for name, (_, models) in FAMILIES.items():
        if model in models:
            return name
    known = [m for _, models in FAMILIES.values() for m in models]
    raise ConfigError(f"--model={model}: unknown model; known: {', '.join(known)}")


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "dacrl"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    family: object = dataclasses.field(default_factory=RankerConfig)

    @property
    def family_name(self):
        return family_of(self.model)

    def sections(self):
        return {"data": self.data, "train": self.train, self.family_name: self.family}

    def relevant(self, section, name):
        return getattr(section, "applies", None) is None or section.applies(self.model, name)

    def values(self):
        """{flag name: value} of every setting that means something for this model."""
        out = {"model": self.model}
        for section in self.sections().values():
            for f in dataclasses.fields(section):
                if self.relevant(section, f.name):
                    out[f.name] = getattr(section, f.name)
        return out

    def with_values(self, **values):
        """A copy with settings replaced by flag name, e.g. with_values(attribute="size")."""
        config = self
        for name, value in values.items():
            if name == "model":
                config = dataclasses.replace(config, model=value)
                continue
            for key, section in config.sections().items():
                if name in {f.name for f in dataclasses.fields(section)}:
                    attr = key if key in ("data", "train") else "family"
                    config = dataclasses.replace(
                        config, **{attr: dataclasses.replace(section, **{name: value})})
                    break
            else:
                raise ConfigError(f"no setting {name!r} for --model={config.model}")
        return config

    def to_json(self):
        sections = {k: dataclasses.asdict(v) for k, v in self.sections().items()}
        return json.dumps(dict(model=self.model, **sections), indent=2, sort_keys=True)

    def compared_values(self):
        """values() of the settings that change results (compared=True), for ledgers."""
        meta = {f.name: f.metadata for s in self.sections().values()
                for f in dataclasses.fields(s)}
        return {k: v for k, v in self.values().items()
                if k == "model" or meta[k]["compared"] or meta[k]["architecture"]}

    def hparams(self):
        """Scalar settings for TensorBoard's HParams dashboard."""
        return {k: ",".join(str(x) for x in v) if isinstance(v, (tuple, list)) else v
                for k, v in self.values().items()}
