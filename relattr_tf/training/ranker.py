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

from relattr_tf.artifacts import pair_model
from relattr_tf.config import ConfigError
from relattr_tf.data import pipeline, schema
from relattr_tf.evaluation import pairs as pair_evaluation, report
from relattr_tf.models import vgg16
from relattr_tf.training import callbacks, stall, task


def pair_correct(target, p):
    """1 where p orders the pair like t (p exactly 0.5 is wrong), weight 0 for equal pairs."""
    target = ops.reshape(ops.cast(target, "float32"), (-1,))
    p = ops.reshape(ops.cast(p, "float32"), (-1,))
    correct = ops.where(target > 0.5, ops.cast(p > 0.5, "float32"),
                        ops.cast(p < 0.5, "float32"))
    weight = ops.cast(ops.not_equal(target, 0.5), "float32")
    return correct, weight


def rank_pairs(network, logits, images, training):
    """(p, its logit or None) of a batch of pairs: from `logits` (the same weights) where the
    model has it, since the loss is taken from the logit; else the network's clipped p."""
    if logits is None:
        return ops.cast(network(images, training=training), "float32"), None
    logit = ops.cast(logits(images, training=training), "float32")
    return ops.sigmoid(logit), logit


def pair_cross_entropy(target, p, logit):
    """The cross-entropy of pairs: from the logit where rank_pairs gave one (a p clipped at its
    bound has no gradient). Keras loss objects: each replica's share of the global mean."""
    return _BCE(target, p) if logit is None else _BCE_OF_LOGITS(target, logit)


def added_losses(network, logits):
    """The add_loss terms of the model rank_pairs called (DeepSTN's pull on a box that leaves
    the image), scaled for the replicas; 0 when there are none."""
    called = network if logits is None else logits
    return tf.nn.scale_regularization_loss(tf.add_n(called.losses)) if called.losses else 0.0


_BCE = keras.losses.BinaryCrossentropy(name="bce")
_BCE_OF_LOGITS = keras.losses.BinaryCrossentropy(from_logits=True, name="bce")


@keras.saving.register_keras_serializable(package="relattr_tf")
class PairwiseRanker(task.TaskModel):
    """Trains `network` ((image_a, image_b) -> p) on ((image_a, image_b), target) batches.

    With `logits` (the same weights, (image_a, image_b) -> the logit of p) the cross-entropy
    is computed from the logit: p is clipped into [1e-7, 1 - 1e-7], and a p at its clip bound
    gives no gradient, however wrong it is."""

    def __init__(self, network, logits=None, **kwargs):
        super().__init__(**kwargs)
        self.network, self.logits = network, logits
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

    def _forward(self, images, target, training):
        """(p, the cross-entropy) of a batch; from the logit where the model has one."""
        p, logit = rank_pairs(self.network, self.logits, images, training)
        return p, pair_cross_entropy(target, p, logit)

    def train_step(self, data):
        images, target = data
        target = ops.reshape(ops.cast(target, "float32"), (-1, 1))
        with tf.GradientTape() as tape:
            p, loss = self._forward(images, target, training=True)
            loss += added_losses(self.network, self.logits)
        self.apply_gradients_of(tape, loss)
        return self._update_metrics(target, p, loss)

    def test_step(self, data):
        images, target = data[0], data[1]
        target = ops.reshape(ops.cast(target, "float32"), (-1, 1))
        p, loss = self._forward(images, target, training=False)
        return self._update_metrics(target, p, loss)


class RankerTask(task.Task):
    """DACRL, its no-attention ablation and RankNet on one attribute's pair splits."""

    def __init__(self, config):
        super().__init__(config)
        self.parts = None

    # ------------------------------------------------------------------ data
    def _val_split(self):
        """The split validation reads: --val_split, or the first training split, whose
        held-out part (`_hold_out`) it then is."""
        return self.config.family.val_split or next(iter(self.config.family.train_weights()))

    def _hold_out(self):
        """(fraction, seed) of the first training split's pairs held out for validation, or
        None with an explicit --val_split."""
        net = self.config.family
        return None if net.val_split else (net.val_fraction, self.config.train.seed)

    def run_name(self):
        return f"{self.config.model}-{self.config.family.attribute}-seed{self.config.train.seed}"

    def result_names(self):
        return self.config.family.eval_split

    def input_fingerprint(self):
        path = self.config.family.backbone_weights
        if not path or not tf.io.gfile.exists(path):
            return {}
        return {"backbone_weights_sha256": report.file_sha256(path)}

    def check_data(self, meta):
        net, data_dir = self.config.family, self.config.data.data_dir
        if net.val_split in net.eval_split or net.val_split in net.train_weights():
            role = "an evaluation" if net.val_split in net.eval_split else "a training"
            raise ConfigError(f"--val_split={net.val_split}: {role} split; validation must be "
                              f"pairs neither trained on nor judged on (leave --val_split empty "
                              f"to hold out --val_fraction of the training pairs)")
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
        if self._hold_out():  # the first split's held-out pairs are not trained on
            pairs -= int(pipeline.held_out(pipeline.read_pairs(
                meta, self.config.data.data_dir, net.attribute, self._val_split()),
                *self._hold_out()).sum())
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
                                         start_batch=start_batch, meta=meta, store=store,
                                         hold_out=self._hold_out())
        val_ds = pipeline.make_dataset(data.data_dir, net.attribute, self._val_split(), config,
                                       training=False, meta=meta, store=store,
                                       hold_out=self._hold_out())
        if self._hold_out() and int(val_ds.cardinality()) == 0:
            raise ConfigError(f"--val_fraction={net.val_fraction:g}: no pair of "
                              f"{net.attribute}/{self._val_split()} is held out for validation; "
                              f"raise it or name a --val_split")
        if data.val_steps:
            val_ds = val_ds.take(data.val_steps)
        return train_ds, val_ds

    def shard_files(self, meta):
        # Training pairs and images are read before fit; inside it only validation streams
        # (a held-out validation part is read before fit too).
        net = self.config.family
        if self._hold_out():
            return []
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
        return pair_model.network_name(self.config)

    def build_parts(self):
        """The pair network's ModelParts, with any weights the config starts it from."""
        net, name = self.config.family, self.network_name()
        self.parts = pair_model.parts_from_config(self.config)
        if net.backbone_weights:
            count = vgg16.load_imagenet_weights(self.parts.trunk, net.backbone_weights)
            logging.info("loaded %d VGG16 conv layers from %s", count, net.backbone_weights)
        if net.init_from and name.startswith("deepstn"):
            pair_model.load_localizer(self.parts, net.init_from, self.config)
        if net.warm_start:
            pair_model.load_pair_weights(self.parts.network, net.warm_start, name, self.config)
        return self.parts

    def build(self):
        size = self.config.data.image_size
        parts = self.build_parts()
        ranker = PairwiseRanker(parts.network, parts.logits, name=f"{self.config.model}_ranker")
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

    def frozen_steps(self, group, steps_per_epoch):
        return self.config.family.trunk_frozen_epochs * steps_per_epoch if group == "trunk" else 0

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

    def training_check(self, val_ds, history):
        """The stall detector's report (training.stall) and its line."""
        check = stall.stall_report(self.parts, val_ds, history)
        return check, stall.report_line(check)

    # ------------------------------------------------------------------ results
    def export(self, model, model_dir):
        return pair_model.export_pair_model(self.parts, model_dir, self.config.data.image_size)

    def evaluate(self, model_dir, **options):
        """{split: result} of every eval split; options: batch_size, method (evaluation)."""
        data, net = self.config.data, self.config.family
        return {split: pair_evaluation.evaluate_split(
                    model_dir, data.data_dir, net.attribute, split,
                    image_memory_mb=data.image_memory_mb, skip_corrupt=data.skip_corrupt,
                    **options)
                for split in net.eval_split}

    def summary_line(self, name, result):
        return pair_evaluation.summary_line(result)


task.register_task("ranker", RankerTask)
