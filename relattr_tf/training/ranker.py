"""The pair rankers' task: any pair model (p = P(a shows more)) trained with cross-entropy on
t in {0, 0.5, 1}.

`PairwiseRanker` is a thin TaskModel owning only train_step / test_step; the network stays
functional. Its parameter groups (trunk, head) step with their own learning rates, the paper's
per-part rates.

Loss scaling: under a distribution strategy the optimizer *sums* replica gradients, so each
replica's loss must be its share of the global-batch mean. The Keras `BinaryCrossentropy`
object divides by the number of replicas itself; a hand-written `reduce_mean` would not, and
gives gradients num_replicas times too large (tests/test_training.py checks 1 vs 2 replicas).
"""
import logging

import keras
import tensorflow as tf
from keras import ops

from relattr_tf import evaluation, models
from relattr_tf.config import ConfigError
from relattr_tf.data import pipeline, schema
from relattr_tf.models import vgg16
from relattr_tf.training import callbacks, export, task


def pair_correct(target, p):
    """1 where p orders the pair like t (p exactly 0.5 is wrong), weight 0 for equal pairs."""
    target = ops.reshape(ops.cast(target, "float32"), (-1,))
    p = ops.reshape(ops.cast(p, "float32"), (-1,))
    correct = ops.where(target > 0.5, ops.cast(p > 0.5, "float32"),
                        ops.cast(p < 0.5, "float32"))
    weight = ops.cast(ops.not_equal(target, 0.5), "float32")
    return correct, weight


@keras.saving.register_keras_serializable(package="relattr_tf")
class PairwiseRanker(task.TaskModel):
    """Trains `network` ((image_a, image_b) -> p) on ((image_a, image_b), target) batches."""

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.bce = keras.losses.BinaryCrossentropy(name="bce")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _update_metrics(self, target, p, loss):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # Weighted by the batch size: the mean is per pair, and the count update depends on the
        # data (an unweighted count can run before a failing end-of-data read and count a
        # phantom batch).
        pairs = ops.cast(ops.shape(target)[0], "float32")
        self.loss_tracker.update_state(loss * replicas, sample_weight=pairs)
        correct, weight = pair_correct(target, p)
        self.accuracy_tracker.update_state(correct, sample_weight=weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, target = data
        target = ops.reshape(ops.cast(target, "float32"), (-1, 1))
        with tf.GradientTape() as tape:
            p = self.network(images, training=True)
            loss = self.bce(target, ops.cast(p, "float32"))
            if self.network.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.network.losses))
        self.apply_gradients_of(tape, loss)
        return self._update_metrics(target, p, loss)

    def test_step(self, data):
        images, target = data[0], data[1]
        target = ops.reshape(ops.cast(target, "float32"), (-1, 1))
        p = self.network(images, training=False)
        return self._update_metrics(target, p, self.bce(target, ops.cast(p, "float32")))


class RankerTask(task.Task):
    """DACRL, its no-attention ablation and RankNet on one attribute's pair splits."""

    def __init__(self, config):
        super().__init__(config)
        self.parts = None

    # ------------------------------------------------------------------ data
    def _val_split(self):
        return self.config.family.val_split or self.config.family.eval_split[0]

    def run_name(self):
        return f"{self.config.model}-{self.config.family.attribute}-seed{self.config.train.seed}"

    def result_names(self):
        return self.config.family.eval_split

    def input_fingerprint(self):
        path = self.config.family.backbone_weights
        if not path or not tf.io.gfile.exists(path):
            return {}
        import hashlib
        with tf.io.gfile.GFile(path, "rb") as f:
            return {"backbone_weights_sha256": hashlib.sha256(f.read()).hexdigest()}

    def check_data(self, meta):
        net, data_dir = self.config.family, self.config.data.data_dir
        for split in list(net.train_weights()) + list(net.eval_split) + [self._val_split()]:
            schema.pair_split(meta, data_dir, net.attribute, split)

    def input_config(self):
        data = self.config.data
        return pipeline.InputConfig(
            batch_size=self.config.train.batch_size, image_size=data.image_size,
            augment=tuple(data.augment), swap=self.config.family.swap,
            image_memory_mb=data.image_memory_mb, skip_corrupt=data.skip_corrupt)

    def steps_per_epoch(self, meta):
        net, batch = self.config.family, self.config.train.batch_size
        pairs = pipeline.pair_count(meta, self.config.data.data_dir, net.attribute,
                                    net.train_weights())
        examples = pairs * (2 if net.swap else 1)
        if examples < batch:
            raise ConfigError(f"{self.config.data.data_dir}: {net.attribute}/"
                              f"{','.join(net.train_split)} has {pairs} pairs, fewer than one "
                              f"batch of {batch}")
        return max(1, examples // batch)

    def datasets(self, meta, start_batch):
        data, net = self.config.data, self.config.family
        weights = net.train_weights()
        config = self.input_config()
        # One store for the training and validation images: each image decoded once.
        store = pipeline.image_store(meta, data.data_dir, net.attribute,
                                     list(weights) + [self._val_split()], config)
        train_ds = pipeline.make_dataset(data.data_dir, net.attribute, weights, config,
                                         training=True, seed=self.config.train.seed,
                                         start_batch=start_batch, meta=meta, store=store)
        val_ds = pipeline.make_dataset(data.data_dir, net.attribute, self._val_split(), config,
                                       training=False, meta=meta, store=store)
        if data.val_steps:
            val_ds = val_ds.take(data.val_steps)
        return train_ds, val_ds

    def shard_files(self, meta):
        # Training pairs and images are read before fit; inside it only validation streams.
        net = self.config.family
        return pipeline.pair_split_files(meta, self.config.data.data_dir, net.attribute,
                                         self._val_split())

    # ------------------------------------------------------------------ model
    def check_config(self, replicas):
        task.check_global_batch(self.config.train.batch_size, replicas)
        if self.config.train.jit_compile and replicas > 1:
            raise ConfigError("--jit_compile does not work with --strategy=mirrored (TensorFlow "
                              "cannot reach the other replicas' variables from XLA)")
        net = self.config.family
        if net.backbone_weights:
            if not tf.io.gfile.exists(net.backbone_weights):
                raise ConfigError(
                    f"--backbone_weights={net.backbone_weights}: no such file (Keras' ImageNet "
                    f"VGG16 notop file, or a trunk pretrained here: python -m relattr_tf.pretrain "
                    f"--flagfile=configs/pretrain_synth.flags)")
            channels = vgg16.first_conv_channels(net.backbone_weights)
            if channels != vgg16.channels(64, net.width):
                raise ConfigError(f"--backbone_weights={net.backbone_weights} holds a trunk with "
                                  f"{channels} first-layer channels; --width={net.width:g} has "
                                  f"{vgg16.channels(64, net.width)} (ImageNet's file needs "
                                  f"--width=1)")

    def network_name(self):
        """The pair network's --model name."""
        return self.config.model

    def build_parts(self):
        """The pair network's ModelParts, with any weights the config starts it from."""
        net, size = self.config.family, self.config.data.image_size
        name = self.network_name()
        self.parts = models.build_model(
            name, image_size=size, width=net.width, seed=self.config.train.seed,
            reduction=net.reduction, cross_filters=net.cross_filters,
            cross_depth=net.cross_depth, head_units=net.head_units, head_pool=net.head_pool,
            box_scale_init=net.box_scale_init, stn_transform=net.stn_transform,
            trunk_init=net.trunk_init, head_init=net.head_init)
        if net.backbone_weights:
            count = vgg16.load_imagenet_weights(self.parts.trunk, net.backbone_weights)
            logging.info("loaded %d VGG16 conv layers from %s", count, net.backbone_weights)
        if net.init_from and name.startswith("deepstn"):
            load_localizer(self.parts, net.init_from, self.config)
        if net.warm_start:
            load_pair_weights(self.parts.network, net.warm_start, name, self.config)
        return self.parts

    def build(self):
        size = self.config.data.image_size
        ranker = PairwiseRanker(self.build_parts().network, name=f"{self.config.model}_ranker")
        blank = tf.zeros((1, size, size, 3))
        ranker((blank, blank))  # built before restoring into it
        return ranker

    def group_learning_rates(self):
        net = self.config.family
        rates = {"trunk": net.trunk_lr, "head": net.head_lr}
        if "localizer" in self.parts.groups:
            rates["localizer"] = net.head_lr * net.localizer_lr_factor
        return rates

    def group_variables(self, model):
        return self.parts.group_variables()

    def describe(self, model):
        net = self.config.family
        return (f"{self.config.model} ({model.network.count_params():,} parameters) on "
                f"{net.attribute}/{','.join(net.train_split)}")

    def callbacks(self, model, log_dir, val_ds):
        count = self.config.train.tensorboard_images
        if not count:
            return []
        for (image_a, image_b), target in val_ds.take(1):
            out = [callbacks.PairImages(log_dir, model.network, image_a[:count].numpy(),
                                        image_b[:count].numpy(), target[:count].numpy())]
            if self.parts.localizer is not None:
                out.append(callbacks.BoxImages(log_dir, self.parts.localizer,
                                               image_a[:count].numpy()))
            return out
        return []

    # ------------------------------------------------------------------ results
    def export(self, model, model_dir):
        return export.export_pair_model(self.parts, model_dir, self.config.data.image_size)

    def evaluate(self, model_dir, **options):
        """{split: result} of every eval split; options: batch_size, method (evaluation)."""
        data, net = self.config.data, self.config.family
        return {split: evaluation.evaluate_split(model_dir, data.data_dir, net.attribute, split,
                                                 image_memory_mb=data.image_memory_mb,
                                                 skip_corrupt=data.skip_corrupt, **options)
                for split in net.eval_split}

    def summary_line(self, name, result):
        return evaluation.summary_line(result)


def load_pair_weights(network, model_dir, name, config):
    """Every weight of `network` from a finished model_dir of the same pair network."""
    import os
    from relattr_tf.config import load_run_config
    path = os.path.join(model_dir, export.KERAS_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"--warm_start={model_dir}: no finished model here ({path} missing)")
    before = load_run_config(model_dir)
    trained = getattr(before.family, "ranker_model", before.model)
    changed = [k for k in ("image_size", "width", "stn_transform")
               if before.values().get(k) != config.values().get(k)]
    if trained != name or changed:
        what = f"model {trained}" if trained != name else ", ".join(
            f"--{k}={before.values().get(k)}" for k in changed)
        raise ConfigError(f"--warm_start={model_dir}: it holds another network ({what}); "
                          f"this run's is {name}")
    network.set_weights(keras.saving.load_model(path, safe_mode=True).get_weights())
    logging.info("all weights from %s", path)


def pair_model_config(model_dir):
    """The config of a pair-model directory (a pair ranker, or an ATTIC run's ranker); a
    one-line error for another model or for an ATTIC loop's folder, which holds several."""
    import glob
    import os
    from relattr_tf.config import CONFIG_FILE, RankerConfig, load_run_config
    rounds = sorted(glob.glob(os.path.join(glob.escape(model_dir), "round-[0-9]*")))
    if rounds and not tf.io.gfile.exists(os.path.join(model_dir, CONFIG_FILE)):
        rankers = [os.path.join(r, d) for r in rounds for d in ("ranker", "adversarial")
                   if tf.io.gfile.exists(os.path.join(r, d, export.KERAS_FILE))]
        example = f", e.g. --model_dir={rankers[-1]}" if rankers else " (none has finished)"
        raise ConfigError(f"{model_dir}: an ATTIC loop's folder holds one ranker per round; "
                          f"pass one{example}")
    config = load_run_config(model_dir)
    if not isinstance(config.family, RankerConfig):
        raise ConfigError(f"{model_dir}: holds a {config.model} model, not a pair model")
    return config


def load_trained_parts(model_dir):
    """(config, ModelParts) of a finished pair-model directory (a pair ranker, or an ATTIC run's
    ranker) with its trained weights: scorer, encoder, comparator and localizer included."""
    import os
    config = pair_model_config(model_dir)
    path = os.path.join(model_dir, export.KERAS_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{model_dir}: training has not finished ({path} missing)")
    # The trained weights replace whatever the run started from.
    config = config.with_values(backbone_weights="", init_from="", warm_start="")
    parts = task.make_task(config).build_parts()
    parts.network.set_weights(keras.saving.load_model(path, safe_mode=True).get_weights())
    return config, parts


def load_localizer(parts, model_dir, config=None):
    """Starts a DeepSTN from another (stage-1) model_dir: its localisation layers and the trunk
    whose features they read (shared with the ranker here), so the boxes carry over; the score
    layer starts anew."""
    import os
    from relattr_tf.config import load_run_config
    path = os.path.join(model_dir, "model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: --init_from needs a finished DeepSTN model_dir")
    if config is not None:
        before = load_run_config(model_dir)
        if not before.model.startswith("deepstn"):
            raise ConfigError(f"{model_dir}: --init_from needs a DeepSTN model, it holds "
                              f"{before.model}")
        changed = [k for k in ("image_size", "width", "stn_transform")
                   if before.values().get(k) != config.values().get(k)]
        if changed:
            raise ConfigError(f"{model_dir}: --init_from needs the same "
                              f"{', '.join('--' + k for k in changed)} as the stage-1 run")
    scorer = keras.saving.load_model(path, safe_mode=True).get_layer("scorer")
    parts.trunk.set_weights(scorer.get_layer("trunk").get_weights())
    parts.groups["localizer"][0].set_weights(scorer.get_layer("localizer").get_weights())
    logging.info("localisation layers and trunk from %s", path)


task.register_task("ranker", RankerTask)
