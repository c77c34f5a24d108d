"""The pretraining task: the VGG16 trunk trained to say what is in a picture (a labelled image
table's heads), then handed to the rankers as a Keras VGG16 notop weight file.

Export: `<model_dir>/vgg16_notop.h5` (load it with `--backbone_weights=PATH`, exactly as
ImageNet's file) and `<model_dir>/scene_classifier.keras` (the whole network).
Evaluation (`eval_pretrain.json`):
  * the accuracy of every head on the table's held-out part;
  * a linear probe: ridge regression of each attribute's strength on the frozen trunk's
    features, fitted on one image table and measured (Spearman rank correlation) on another,
    beside the same probe on a randomly initialised trunk;
  * the acceptance gate on both (evaluation.trunk_gate), its verdict printed.

The loss: each head's cross-entropy over its uniform-guess loss (log of its class count),
averaged over the heads; a Keras loss object each, so the loss is a replica's share of the
global mean (tests/test_training.py checks 1 vs 2 replicas). Balancing: training.head_balance.
"""
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from relattr_tf import config as config_lib
from relattr_tf.data import pipeline, schema
from relattr_tf.data.synthetic import render
from relattr_tf.evaluation import head_ceilings, linear_probe, report, trunk_gate
from relattr_tf.models import vgg16
from relattr_tf.models.scene_classifier import build_scene_classifier
from relattr_tf.training import head_balance, task

WEIGHTS_FILE = "vgg16_notop.h5"
KERAS_FILE = "scene_classifier.keras"
RESULT_FILE = "eval_pretrain.json"


def head_correct(head, labels, logits):
    """Per-example correctness of one head: the argmax class, or, for a sigmoid head (a set
    of classes), every class of the set right."""
    logits = ops.cast(logits, "float32")
    if head["kind"] == "softmax":
        label = ops.cast(ops.reshape(labels, (-1,)), "int32")
        return ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), label),
                        "float32")
    return ops.min(ops.cast(ops.equal(ops.cast(logits > 0, "float32"), labels), "float32"),
                   axis=-1)


def uniform_loss(head):
    """A head's loss when it guesses uniformly: log(classes) for a softmax, log 2 per class of
    a sigmoid head (Keras' binary cross-entropy averages over the classes)."""
    return float(np.log(head["size"] if head["kind"] == "softmax" else 2))


def chance_loss(head, labels):
    """The loss of the best constant guess, the labels' own entropy: what an untrained head
    should start near. labels: (N, columns) of this head."""
    labels = np.asarray(labels, np.float64)
    if head["kind"] == "softmax":
        p = np.bincount(labels[:, 0].astype(int), minlength=head["size"]) / len(labels)
        return float(-np.sum(p[p > 0] * np.log(p[p > 0])))
    p = np.clip(labels.mean(0), 1e-7, 1 - 1e-7)
    return float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))


def chance_accuracy(head, labels):
    """The accuracy of always answering the commonest class (for a sigmoid head, set)."""
    labels = np.asarray(labels)
    rows = labels[:, 0] if head["kind"] == "softmax" else [tuple(r) for r in labels]
    _, counts = np.unique(np.asarray(rows), axis=0, return_counts=True)
    return float(counts.max() / len(labels))


@keras.saving.register_keras_serializable(package="relattr_tf")
class SceneClassifier(task.TaskModel):
    """Trains `network` (image -> {head: logits}) on (image, label vector) batches."""

    def __init__(self, network, heads, columns=None, first_heads=(), first_heads_steps=0,
                 balanced_heads=(), balance_every=1, **kwargs):
        super().__init__(**kwargs)
        self.network, self.heads = network, [dict(h) for h in heads]
        # The curriculum: only first_heads count for the first first_heads_steps steps.
        self.first_heads, self.first_heads_steps = tuple(first_heads), int(first_heads_steps)
        self.balanced_heads, self.balance_every = tuple(balanced_heads), int(balance_every)
        if self.balanced_heads:  # each head's weight, measured every balance_every steps
            self.balance_weights = self.add_weight(
                shape=(len(self.heads),), initializer="ones", trainable=False,
                name="balance_weights", aggregation="only_first_replica")
        # Where each head's label sits in the table's label vector (the table may have more).
        self.columns = columns or schema.label_columns(self.heads)
        self.head_losses = {
            h["name"]: (keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                        if h["kind"] == "softmax" else
                        keras.losses.BinaryCrossentropy(from_logits=True))
            for h in self.heads}
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_trackers = {h["name"]: keras.metrics.Mean(name=f"{h['name']}_accuracy")
                                  for h in self.heads}

    def call(self, images, training=False):
        return self.network(images, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker] + list(self.accuracy_trackers.values())

    def _labels(self, labels, head):
        start, stop = self.columns[head["name"]]
        return ops.cast(labels[:, start:stop], "float32")

    def losses_by_head(self, labels, logits):
        """{head: its cross-entropy}, a replica's share of the global mean."""
        return {h["name"]: self.head_losses[h["name"]](
            self._labels(labels, h), ops.cast(logits[h["name"]], "float32"))
            for h in self.heads}

    def _terms(self, labels, logits):
        """Each head's share of the loss, (heads,); the loss is their sum."""
        # Each head's loss over its uniform-guess loss, averaged: every head starts near 1,
        # so a 9-way head does not outweigh a 2-way one by log 9 / log 2.
        losses = self.losses_by_head(labels, logits)
        normalised = ops.stack([losses[h["name"]] / uniform_loss(h) for h in self.heads])
        if not self.first_heads:
            return normalised / len(self.heads)
        joined = ops.cast(ops.greater_equal(self.optimizer_iterations, self.first_heads_steps),
                          "float32")
        weights = ops.stack([1.0 if h["name"] in self.first_heads else joined
                             for h in self.heads])
        return weights * normalised / ops.sum(weights)

    def _loss(self, labels, logits):
        return ops.sum(self._terms(labels, logits))

    def balance_groups(self):  # lists of head indices
        return head_balance.groups(self.heads, self.balanced_heads)

    def _balanced_gradients(self, tape, terms):
        """variables -> gradients: the shared layers' weigh each head by balance_weights
        (measured every balance_every steps), each head's own classifier's are plain."""
        shared = [v for layer in ("trunk", "scene_fc")
                  for v in self.network.get_layer(layer).trainable_variables]
        owner = {id(v): i for i, h in enumerate(self.heads)
                 for v in self.network.get_layer(f"head_{h['name']}").trainable_variables}

        def gradients(variables):
            measuring = None
            if self.balance_every > 1:
                measuring = ops.equal(self.optimizer_iterations % self.balance_every, 0)
            groups = self.balance_groups()
            norms = head_balance.pull_norms(tape, terms, shared, groups, measuring)
            weights = head_balance.weights_of(norms, groups)
            if measuring is not None:
                weights = ops.where(measuring, weights, self.balance_weights)
            self.balance_weights.assign(weights)
            grads = tape.gradient(terms, variables, output_gradients=weights)
            return [g / weights[owner[id(v)]] if g is not None and id(v) in owner else g
                    for g, v in zip(grads, variables)]
        return gradients

    def _update_metrics(self, labels, logits, loss):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        count = ops.cast(ops.shape(labels)[0], "float32")
        self.loss_tracker.update_state(loss * replicas, sample_weight=count)
        for h in self.heads:
            self.accuracy_trackers[h["name"]].update_state(
                head_correct(h, self._labels(labels, h), logits[h["name"]]))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, labels = data
        with tf.GradientTape(persistent=bool(self.balanced_heads)) as tape:
            logits = self.network(images, training=True)
            terms = self._terms(labels, logits)
            loss = ops.sum(terms)
        gradients = self._balanced_gradients(tape, terms) if self.balanced_heads else None
        self.apply_gradients_of(tape, loss, gradients=gradients)
        return self._update_metrics(labels, logits, loss)

    def test_step(self, data):
        images, labels = data
        logits = self.network(images, training=False)
        return self._update_metrics(labels, logits, self._loss(labels, logits))


class PretrainTask(task.ImageTableTask):
    """The trunk on a labelled image table (family "pretrain"). heads: the label heads;
    default: the table's label_heads in the data directory's metadata."""

    def __init__(self, config, heads=None):
        super().__init__(config)
        self.heads, self.columns = heads, None

    def run_name(self):
        return f"{self.config.model}-w{self.config.family.width:g}-seed{self.config.train.seed}"

    def result_names(self):
        return ("pretrain",)

    def _heads(self, meta=None):
        """The trained heads (--pretrain_heads of the table's, or all); sets self.columns, where
        each one's label sits in the table's label vector."""
        if self.heads is None:
            data = self.config.data
            meta = meta or schema.read_metadata(data.data_dir)
            table_heads = schema.label_heads(meta, data.data_dir,
                                             self.config.family.pretrain_table)
            self.columns = schema.label_columns(table_heads)
            self.heads = self._chosen(table_heads)
        if self.columns is None:
            self.columns = schema.label_columns(self.heads)
        return self.heads

    def _chosen(self, table_heads):
        family = self.config.family
        wanted = family.pretrain_heads
        names = [h["name"] for h in table_heads]
        balanced = tuple(family.balanced_heads)
        balanced = () if balanced == ("each",) else balanced
        for flag, asked, among in (("pretrain_heads", wanted, names),
                                   ("first_heads", family.first_heads, wanted or names),
                                   ("balanced_heads", balanced, wanted or names)):
            unknown = [w for w in asked if w not in among]
            if unknown:
                raise schema.DataError(f"--{flag}: {','.join(unknown)} not among the heads "
                                       f"of the {family.pretrain_table!r} table it trains "
                                       f"({','.join(among)})")
        if balanced and set(balanced) >= set(wanted or names):
            raise schema.DataError("--balanced_heads names every trained head, which is a plain "
                                   "sum; name the group to balance against the rest, or each")
        return [h for h in table_heads if not wanted or h["name"] in wanted]

    def check_config(self, replicas):
        super().check_config(replicas)
        family = self.config.family
        if family.balanced_heads and self.config.train.mixed_precision == "mixed_float16":
            raise config_lib.ConfigError("--balanced_heads needs float32 or mixed_bfloat16, not "
                                         "--mixed_precision=mixed_float16 (its loss scale)")
        if family.balanced_heads and family.first_heads_steps % family.balance_every:
            # Else the joining heads keep weight 1 until the next measurement.
            raise config_lib.ConfigError("--first_heads_steps must be a multiple of "
                                         "--balance_every (measured as the heads join)")

    def check_data(self, meta):
        self._chosen(schema.label_heads(meta, self.config.data.data_dir,
                                        self.config.family.pretrain_table))
        for table in self.config.family.probe_tables:
            schema.image_table(meta, self.config.data.data_dir, table)

    def image_dataset(self, part, training, meta=None, start_batch=0):
        data, net = self.config.data, self.config.family
        # No augmentation: a flip or a shift changes the position and orientation labels.
        config = pipeline.InputConfig(batch_size=self.config.train.batch_size,
                                      image_size=data.image_size, augment=(),
                                      image_memory_mb=data.image_memory_mb,
                                      skip_corrupt=data.skip_corrupt)
        return pipeline.make_image_dataset(
            data.data_dir, net.pretrain_table, config, part=part,
            validation_fraction=net.validation_fraction, training=training,
            seed=self.config.train.seed, start_batch=start_batch, meta=meta, target="labels")

    def table(self):
        return self.config.family.pretrain_table

    def build(self):
        net, size = self.config.family, self.config.data.image_size
        self.parts = build_scene_classifier(size, net.width, self._heads(), net.head_units,
                                            seed=self.config.train.seed,
                                            trunk_init=net.trunk_init,
                                            dropout=net.head_dropout)
        model = SceneClassifier(self.parts.network, self._heads(), self.columns,
                                net.first_heads, net.first_heads_steps, net.balanced_heads,
                                net.balance_every,
                                name="scene_pretrainer")
        model(tf.zeros((1, size, size, 3)))
        return model

    def group_learning_rates(self):
        return {"trunk": self.config.family.trunk_lr, "head": self.config.family.head_lr}

    def group_variables(self, model):
        return self.parts.group_variables()

    def export(self, model, model_dir):
        vgg16.save_notop_weights(self.parts.trunk, os.path.join(model_dir, WEIGHTS_FILE))
        self.parts.network.save(os.path.join(model_dir, KERAS_FILE))

    # ------------------------------------------------------------------ results
    def evaluate(self, model_dir, batch_size=64, **options):
        data, net = self.config.data, self.config.family
        network = keras.saving.load_model(os.path.join(model_dir, KERAS_FILE), safe_mode=True)
        heads = self._heads()
        columns = self.columns
        correct, labels_seen = {h["name"]: [] for h in heads}, []
        for images, labels in self.image_dataset("validation", False):
            logits = network(images, training=False)
            labels_seen.append(np.asarray(labels))
            for h in heads:
                start, stop = columns[h["name"]]
                correct[h["name"]].append(np.asarray(head_correct(
                    h, tf.cast(labels[:, start:stop], tf.float32), logits[h["name"]])))
        accuracy = {name: float(np.mean(np.concatenate(v))) for name, v in correct.items()}
        labels_seen = np.concatenate(labels_seen)
        chance = {h["name"]: chance_accuracy(h, labels_seen[:, slice(*columns[h["name"]])])
                  for h in heads}
        trunk = network.get_layer("trunk")
        keras.utils.set_random_seed(self.config.train.seed)
        random_trunk = vgg16.build_vgg16_trunk(data.image_size, net.width, init=net.trunk_init)
        probe = linear_probe.linear_probe(
            trunk, random_trunk, data.data_dir, net.probe_tables, data.image_size, batch_size,
            blocks=[f"block{b}_pool" for b in range(1, len(vgg16.VGG16_BLOCKS) + 1)])
        meta = schema.read_metadata(data.data_dir)
        kinds = {name: info.get("kind") for name, info in meta.get("attribute_info", {}).items()}
        ceilings = self.head_ceilings(meta)
        gate = trunk_gate.trunk_gate([dict(h, **({"ceiling": ceilings[h["name"]]}
                                               if h["name"] in ceilings else {}))
                                      for h in heads], accuracy, probe["attributes"], kinds)
        result = dict(heldout_accuracy=accuracy, chance_accuracy=chance, ceilings=ceilings,
                      heldout_images=len(labels_seen), probe=probe, gate=gate,
                      weights_file=os.path.join(model_dir, WEIGHTS_FILE),
                      width=net.width, image_size=data.image_size)
        report.write_json(os.path.join(model_dir, RESULT_FILE), result)
        return {"pretrain": result}

    def head_ceilings(self, meta):
        """{head: the mask-given oracle's accuracy} (evaluation.head_ceilings) for a pretrain
        table the embedded benchmark's renderer drew; {} for any other table."""
        data = self.config.data
        table = schema.image_table(meta, data.data_dir, self.config.family.pretrain_table)
        scenery = render.SCENERIES.get(table.get("scenery", "benchmark"))
        if meta.get("dataset") != "synthetic" or scenery is None or [
                h["name"] for h in table.get("label_heads", [])] != [
                h["name"] for h in render.label_heads(scenery)]:
            return {}
        # As many fresh scenes as the table has, from 200 (a test's table) to 3,000.
        count = int(np.clip(table.get("count", 0), 200, 3000))
        return head_ceilings.head_ceilings(data.image_size, scenery,
                                           table.get("global_strengths", "drawn"), count=count,
                                           seed=self.config.train.seed)

    def summary_line(self, name, result):
        heads = ", ".join(f"{k} {100 * v:.1f}%" for k, v in result["heldout_accuracy"].items())
        probe = result["probe"]["attributes"]
        rho = ", ".join(f"{a} {p['spearman']:.2f} ({p['spearman_random_trunk']:.2f})"
                        for a, p in probe.items())
        return (f"pretrain held-out accuracy: {heads}\nlinear probe, Spearman (random trunk): "
                f"{rho}\n{trunk_gate.verdict_line(result['gate'])}")


task.register_task("pretrain", PretrainTask)
