"""ATTIC's adversarial phase: a pair ranker against a control net that drives the frozen
Attribute2Image decoder to imagine pairs the ranker gets wrong (Yu & Grauman, ICCV 2017).

`AdversarialRanker` is a thin TaskModel whose train_step runs both players, one GradientTape
and one optimizer each (`compile(ranker_optimizer=..., control_optimizer=...)`):

  control step: the next `generated_batch` slots' q -> control -> (y^A, y^B), z^A, z^B = the
      halves of q -> frozen decoder (inference mode) -> the pair; the control minimises the
      ranker's cross-entropy against the *flipped* labels of its own pairs (labels inferred
      from y^A vs y^B on the pair's attribute: bounded, unlike the negated loss, and with the
      same direction); the ranker judges in inference mode and does not move.
  ranker step: one forward pass over the real / labelled pairs of the batch and the pairs
      just generated (their pixels held fixed); loss = BCE(real) + generated_weight *
      BCE(generated, inferred labels); the control does not move.

The slots (T draws of q) are a non-trainable weight, so checkpoints keep them; steps walk
through them in order, each replica taking its own part of the global batch, so one replica
and two take the same step. Each loss is a Keras BinaryCrossentropy (the replica's share of
the global mean: tests/test_attic.py checks 1 vs 2 replicas).

`AtticTask` (family "attic", model "attic") is the pair rankers' task with this model: the same
pair data (--train_split mixes real and labelled synthetic splits), the ranker's export and
evaluation, plus `control/` (the control net and its slots) and `eval_generated.json`: how hard
the generated pairs are, before and after the phase (relattr_tf.evaluation.generated_pairs).
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from relattr_tf.artifacts import control as control_artifact, generator as generator_artifact
from relattr_tf.artifacts import pair_model
from relattr_tf.config import ConfigError
from relattr_tf.evaluation import generated_pairs, report
from relattr_tf.models import control as control_lib
from relattr_tf.models.control import inferred_target
from relattr_tf.training import callbacks, ranker, task


@keras.saving.register_keras_serializable(package="relattr_tf")
class AdversarialRanker(task.TaskModel):
    """The ranker (image_a, image_b) -> p against `control` through the frozen `decoder`.

    slots: (T, 2 * z_size) q's; attribute_index: the column of y the pairs are about;
    image_size: the ranker's input size (generated images are resized to it); ranker_logits:
    the ranker's logit of p (its weights), which both players' cross-entropies are taken from
    where given (a clipped p gives no gradient: ranker.PairwiseRanker).
    """

    def __init__(self, ranker_network, control, decoder, slots, attribute_index,
                 generated_batch=8, generated_weight=1.0, image_size=64, ranker_logits=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.network, self.control, self.decoder = ranker_network, control, decoder
        self.logits = ranker_logits
        self.decoder.trainable = False
        self.slots = self.add_weight(shape=np.shape(slots), name="slots", trainable=False,
                                     initializer=keras.initializers.Constant(
                                         np.asarray(slots, np.float32)))
        self.attribute_index = int(attribute_index)
        self.generated_batch = int(generated_batch)
        self.generated_weight = float(generated_weight)
        self.image_size = int(image_size)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.generated_loss_tracker = keras.metrics.Mean(name="generated_loss")
        self.generated_accuracy_tracker = keras.metrics.Mean(name="generated_accuracy")
        self.control_loss_tracker = keras.metrics.Mean(name="control_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.generated_loss_tracker,
                self.generated_accuracy_tracker, self.control_loss_tracker]

    def compile(self, ranker_optimizer, control_optimizer, group_variables, weight_decay=0.0,
                **kwargs):
        """ranker_optimizer: one optimizer, or {parameter group: optimizer} for the ranker's
        parts; group_variables: {group: variables}, the control's under "control"."""
        if not isinstance(ranker_optimizer, dict):
            ranker_optimizer = {g: ranker_optimizer for g in group_variables if g != "control"}
        self.ranker_groups = list(ranker_optimizer)
        super().compile(dict(ranker_optimizer, control=control_optimizer), group_variables,
                        weight_decay=weight_decay, **kwargs)

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    # ------------------------------------------------------------------ generation
    def decode(self, y, z):
        """Frozen decoder (inference mode) -> RGB in [0, 1] at the ranker's size."""
        mean, _ = self.decoder([y, z], training=False)
        image = (ops.cast(mean, "float32") + 1.0) / 2.0
        if image.shape[1] != self.image_size:
            image = ops.image.resize(image, (self.image_size, self.image_size))
        return image

    def generate(self, q, training=False):
        """q (B, 2 z) -> ((image_a, image_b), inferred target (B, 1), (y_a, y_b))."""
        y_a, y_b = self.control(q, training=training)
        z_a, z_b = control_lib.split_latents(q)
        images = (self.decode(y_a, z_a), self.decode(y_b, z_b))
        k = self.attribute_index
        target = ops.reshape(inferred_target(y_a[:, k], y_b[:, k]), (-1, 1))
        return images, ops.stop_gradient(target), (y_a, y_b)

    def slot_ids(self, step):
        """This replica's slots for global step `step`: the global batch walks through the
        slots in order, replica r taking the r-th part of it."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        replica = context.replica_id_in_sync_group if context is not None else 0
        per_replica = self.generated_batch // replicas
        start = ops.cast(step, "int32") * self.generated_batch + replica * per_replica
        return ops.mod(start + ops.arange(per_replica, dtype="int32"), ops.shape(self.slots)[0])

    # ------------------------------------------------------------------ steps
    def rank(self, images, training):
        return ranker.rank_pairs(self.network, self.logits, images, training)

    def control_step(self, q):
        """The control's move: pairs that the ranker orders against their own labels."""
        with tf.GradientTape() as tape:
            images, target, _ = self.generate(q, training=True)
            p, logit = self.rank(images, training=False)
            loss = ranker.pair_cross_entropy(1.0 - target, p, logit)  # flipped targets
        self.apply_gradients_of(tape, loss, ["control"])
        return ops.stop_gradient(images[0]), ops.stop_gradient(images[1]), target, loss

    def ranker_step(self, images, target, generated):
        """The ranker's move on the real / labelled pairs and the generated ones (fixed)."""
        (image_a, image_b), target = images, ops.reshape(ops.cast(target, "float32"), (-1, 1))
        gen_a, gen_b, gen_target = generated
        count = ops.shape(target)[0]
        with tf.GradientTape() as tape:
            p, logit = self.rank((ops.concatenate([ops.cast(image_a, "float32"), gen_a], 0),
                                  ops.concatenate([ops.cast(image_b, "float32"), gen_b], 0)),
                                 training=True)
            real, generated = ((None, None) if logit is None else
                               (logit[:count], logit[count:]))
            real_loss = ranker.pair_cross_entropy(target, p[:count], real)
            generated_loss = ranker.pair_cross_entropy(gen_target, p[count:], generated)
            loss = real_loss + self.generated_weight * generated_loss
            loss += ranker.added_losses(self.network, self.logits)
        self.apply_gradients_of(tape, loss, self.ranker_groups)
        return p[:count], p[count:], real_loss, generated_loss

    def _update_metrics(self, target, p, real_loss, gen_target, gen_p, generated_loss,
                        control_loss):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        pairs = ops.cast(ops.shape(target)[0], "float32")
        generated = ops.cast(ops.shape(gen_target)[0], "float32")
        self.loss_tracker.update_state(real_loss * replicas, sample_weight=pairs)
        correct, weight = ranker.pair_correct(target, p)
        self.accuracy_tracker.update_state(correct, sample_weight=weight)
        self.generated_loss_tracker.update_state(generated_loss * replicas,
                                                 sample_weight=generated)
        correct, weight = ranker.pair_correct(gen_target, gen_p)
        self.generated_accuracy_tracker.update_state(correct, sample_weight=weight)
        self.control_loss_tracker.update_state(control_loss * replicas, sample_weight=generated)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, target = data[0], data[1]
        step = self.group_optimizers["control"].iterations
        gen_a, gen_b, gen_target, control_loss = self.control_step(
            ops.take(self.slots, self.slot_ids(step), axis=0))
        p, gen_p, real_loss, generated_loss = self.ranker_step(images, target,
                                                               (gen_a, gen_b, gen_target))
        return self._update_metrics(ops.reshape(ops.cast(target, "float32"), (-1, 1)), p,
                                    real_loss, gen_target, gen_p, generated_loss, control_loss)

    def test_step(self, data):
        (image_a, image_b), target = data[0], ops.reshape(ops.cast(data[1], "float32"), (-1, 1))
        p, logit = self.rank((image_a, image_b), training=False)
        # The same first slots every time: the held-out figure follows the control alone.
        (gen_a, gen_b), gen_target, _ = self.generate(
            ops.take(self.slots, self.slot_ids(0), axis=0), training=False)
        gen_p, gen_logit = self.rank((gen_a, gen_b), training=False)
        loss = ranker.pair_cross_entropy
        return self._update_metrics(target, p, loss(target, p, logit), gen_target, gen_p,
                                    loss(gen_target, gen_p, gen_logit),
                                    loss(1.0 - gen_target, gen_p, gen_logit))


# --------------------------------------------------------------------------- the task
class AtticTask(ranker.RankerTask):
    """ATTIC's adversarial phase on one attribute (family "attic")."""

    def __init__(self, config):
        super().__init__(config)
        self.control = self.info = None

    def run_name(self):
        net = self.config.family
        return f"attic-{net.ranker_model}-{net.attribute}-seed{self.config.train.seed}"

    def result_names(self):
        return tuple(self.config.family.eval_split) + ("generated",)

    def input_fingerprint(self):
        net = self.config.family
        out = super().input_fingerprint()
        out["generator_sha256"] = report.file_sha256(
            os.path.join(net.generator_dir, generator_artifact.DECODER_FILE))
        if net.warm_start:
            out["warm_start_sha256"] = report.file_sha256(
                os.path.join(net.warm_start, pair_model.KERAS_FILE))
        if net.control_from:
            out["control_from_sha256"] = report.file_sha256(os.path.join(
                net.control_from, control_artifact.CONTROL_DIR, control_artifact.CONTROL_FILE))
        return out

    def generator_attribute(self):
        net = self.config.family
        return net.generator_attribute or net.attribute

    def check_config(self, replicas):
        super().check_config(replicas)
        net = self.config.family
        info_path = os.path.join(net.generator_dir, generator_artifact.INFO_FILE)
        if not tf.io.gfile.exists(info_path):
            raise ConfigError(f"--generator_dir={net.generator_dir}: no generator here "
                              f"({generator_artifact.INFO_FILE} missing); train one with python -m "
                              f"relattr_tf.train --flagfile=configs/cvae_synth.flags")
        with tf.io.gfile.GFile(info_path) as f:
            names = json.load(f)["attributes"]
        if self.generator_attribute() not in names:
            raise ConfigError(f"--generator_attribute={self.generator_attribute()}: the "
                              f"generator in {net.generator_dir} knows {', '.join(names)}")
        if net.generated_batch % replicas:
            raise ConfigError(f"--generated_batch={net.generated_batch} must divide evenly "
                              f"over the {replicas} replicas")
        for flag, model_dir in (("warm_start", net.warm_start),
                                ("control_from", net.control_from)):
            if model_dir and not tf.io.gfile.exists(os.path.join(model_dir, pair_model.KERAS_FILE)):
                raise ConfigError(f"--{flag}={model_dir}: no finished model here "
                                  f"({pair_model.KERAS_FILE} missing)")

    # ------------------------------------------------------------------ model
    def build_control(self):
        """The control net and its slots as this config starts them: fresh (seeded), or
        carried over from --control_from."""
        net, seed = self.config.family, self.config.train.seed
        decoder, info = generator_artifact.load_generator(net.generator_dir)
        y_size, z_size = len(info["attributes"]), int(info["z_size"])
        control = control_lib.build_control(
            2 * z_size, y_size, net.control_units, net.control_head_units, seed=seed,
            mean=info["strength_mean"], std=info["strength_std"])
        slots = np.random.default_rng([seed, 7]).normal(size=(net.slots, 2 * z_size))
        if net.control_from:
            previous, slots = control_artifact.load_control(net.control_from)
            if previous.count_params() != control.count_params() or len(slots) != net.slots:
                raise ConfigError(f"--control_from={net.control_from}: its control net or "
                                  f"slot count differs from this run's")
            control.set_weights(previous.get_weights())
        return control, slots.astype(np.float32), decoder, info

    def build(self):
        parts = self.build_parts()
        self.control, slots, decoder, self.info = self.build_control()
        net, size = self.config.family, self.config.data.image_size
        model = AdversarialRanker(
            parts.network, self.control, decoder, slots,
            self.info["attributes"].index(self.generator_attribute()),
            generated_batch=net.generated_batch, generated_weight=net.generated_weight,
            ranker_logits=parts.logits,
            image_size=size, name="attic")
        blank = tf.zeros((1, size, size, 3))
        model((blank, blank))
        return model

    def group_learning_rates(self):
        return dict(super().group_learning_rates(), control=self.config.family.control_lr)

    def learning_rate_schedule(self, group, learning_rate, steps_per_epoch):
        if group == "control":
            return keras.optimizers.schedules.InverseTimeDecay(
                learning_rate, decay_steps=1, decay_rate=self.config.family.control_lr_decay)
        return super().learning_rate_schedule(group, learning_rate, steps_per_epoch)

    def group_variables(self, model):
        return dict(self.parts.group_variables(), control=model.control.trainable_variables)

    def weight_decay(self):
        ranker_decay = super().weight_decay()
        return dict({g: ranker_decay for g in self.parts.groups},
                    control=self.config.family.control_weight_decay)

    def compile_model(self, model, group_optimizers, group_variables, weight_decay, **kwargs):
        control_optimizer = group_optimizers.pop("control")
        model.compile(ranker_optimizer=group_optimizers, control_optimizer=control_optimizer,
                      group_variables=group_variables, weight_decay=weight_decay, **kwargs)

    def describe(self, model):
        net = self.config.family
        return (f"attic: {net.ranker_model} ({model.network.count_params():,} parameters) "
                f"against a control net ({model.control.count_params():,}) over {net.slots} "
                f"slots, on {net.attribute}/{','.join(net.train_split)}")

    def callbacks(self, model, log_dir, val_ds):
        out = super().callbacks(model, log_dir, val_ds)
        count = self.config.train.tensorboard_images
        if count:
            out.append(callbacks.GeneratedPairImages(log_dir, model, min(count * 2, 16)))
        return out

    # ------------------------------------------------------------------ results
    def export(self, model, model_dir):
        control_artifact.save_control(
            model.control, np.asarray(model.slots),
            os.path.join(model_dir, control_artifact.CONTROL_DIR),
            dict(attribute=self.config.family.attribute,
                 generator_attribute=self.generator_attribute(),
                 generator_dir=self.config.family.generator_dir))
        return super().export(model, model_dir)

    def evaluate(self, model_dir, **options):
        results = super().evaluate(model_dir, **options)
        results["generated"] = generated_pairs.evaluate_generated(
            self.config, model_dir, self.build_control())
        return results

    def summary_line(self, name, result):
        if name != "generated":
            return super().summary_line(name, result)
        return generated_pairs.summary_line(result)


task.register_task("attic", AtticTask)
