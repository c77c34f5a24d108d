"""The task interface: what differs between model families, behind one small surface.

`training.run.train_and_evaluate(config, model_dir)` drives any task with the shared machinery
(checkpoints and resume, the non-finite-loss stop, TensorBoard and HParams, the progress line,
summary.json). A task says how to read its data, build its network, export and evaluate it:

    class MyTask(Task):
        def steps_per_epoch(self, meta): ...             # one pass over the training data
        def datasets(self, meta, start_batch): ...       # (endless train, finite validation)
        def build(self): ...                             # a TaskModel, built
        def export(self, model, model_dir): ...
        def evaluate(self, model_dir): ...               # {name: result dict}

Its model is a `TaskModel`: a thin keras.Model subclass that owns train_step / test_step and
steps one optimizer per parameter group (the groups its network declares), with weight decay
and mixed_float16 loss scaling done once here for every family.
"""
import keras
import tensorflow as tf

from relattr_tf.config import ConfigError
from relattr_tf.data import schema
from relattr_tf.training import loss_scale as loss_scale_lib, optimizers as optimizer_lib


class _Groups:
    """{group: variables} kept out of Keras' attribute tracking (they belong to the network),
    and the L2 factor of each kernel (biases and other vectors get none)."""

    def __init__(self, variables, weight_decay):
        self.variables = {g: list(v) for g, v in variables.items()}
        decay = lambda g: float(weight_decay.get(g, 0.0) if isinstance(weight_decay, dict)
                                else weight_decay)
        self.l2 = {id(v): decay(g) for g, vs in self.variables.items() for v in vs
                   if len(v.shape) > 1 and decay(g)}


class TaskModel(keras.Model):
    """Base of the models that own train_step: one optimizer per parameter group.

    Subclasses build their layers and metrics, and in train_step call
    `self.apply_gradients_of(tape, loss, groups)` once per player. Under the mixed_float16
    policy (set before the model is made) one dynamic loss scale serves every optimizer.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_scale = (loss_scale_lib.LossScale(name="loss_scale")
                           if keras.mixed_precision.global_policy().name == "mixed_float16"
                           else None)

    def compile(self, optimizers, group_variables, weight_decay=0.0, **kwargs):
        """optimizers: {group: optimizer}; group_variables: {group: variables}.
        weight_decay > 0 adds wd * w to the gradient of every kernel (L2, coupled); a dict
        {group: wd} gives each group its own."""
        super().compile(optimizer=None, **kwargs)
        self.group_optimizers = dict(optimizers)
        self.groups = _Groups(group_variables, weight_decay)
        for group, optimizer in self.group_optimizers.items():
            # Built here, not lazily: MirroredStrategy and checkpoint restore both need slots.
            optimizer.build(self.groups.variables[group])

    def apply_gradients_of(self, tape, loss, groups=None, gradients=None):
        """Differentiates `loss` (a replica's share of the global-batch loss) with respect to
        the groups' variables and steps their optimizers. gradients: a function (variables ->
        their gradients) in place of the tape's, for a model that combines several losses'
        gradients itself; not under mixed_float16's loss scale."""
        groups = list(groups or self.group_optimizers)
        variables = [v for g in groups for v in self.groups.variables[g]]
        if gradients is not None:
            if self.loss_scale is not None:
                raise ConfigError("combined gradients need float32 or mixed_bfloat16, not "
                                  "--mixed_precision=mixed_float16")
            grads = gradients(variables)
        elif self.loss_scale is not None:
            with tape:  # the scaling must be recorded too
                scaled = self.loss_scale.scale_loss(loss)
            grads = self.loss_scale.unscale(tape.gradient(scaled, variables))
        else:
            grads = tape.gradient(loss, variables)
        if self.groups.l2:
            # Each replica adds its share: the optimizer sums replica gradients.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            grads = [g + (self.groups.l2[id(v)] / replicas) * tf.cast(v, g.dtype)
                     if g is not None and id(v) in self.groups.l2 else g
                     for g, v in zip(grads, variables)]
        updates, start = [], 0
        for group in groups:
            count = len(self.groups.variables[group])
            updates.append((self.group_optimizers[group], grads[start:start + count],
                            self.groups.variables[group]))
            start += count
        if self.loss_scale is not None:
            self.loss_scale.apply(updates)
        else:
            for optimizer, group_grads, group_vars in updates:
                optimizer.apply_gradients(zip(group_grads, group_vars))

    def learning_rates(self):
        """Current learning rate of each group's optimizer (for logging)."""
        return {f"lr_{g}": o.learning_rate for g, o in self.group_optimizers.items()}

    @property
    def optimizer_iterations(self):
        """The first group's optimizer step counter (a variable; restored on resume)."""
        return next(iter(self.group_optimizers.values())).iterations

    def optimizer_steps(self):
        return int(self.optimizer_iterations.numpy())


class Task:
    """One model family's data, network, export and evaluation (see the module docstring)."""

    def __init__(self, config):
        self.config = config

    def run_name(self):
        """The run's name in TensorBoard's HParams dashboard."""
        return f"{self.config.model}-seed{self.config.train.seed}"

    def result_names(self):
        """Names evaluate() returns; a finished run is reused only when it has them all."""
        return ()

    def input_fingerprint(self):
        """What the config names but does not hold (a weight file's contents), as a dict; a
        finished run is reused only when it is unchanged."""
        return {}

    # ------------------------------------------------------------------ data
    def check_data(self, meta):
        """One-line DataErrors for splits / tables the config names but the data lacks."""

    def steps_per_epoch(self, meta):
        raise NotImplementedError

    def datasets(self, meta, start_batch):
        """(training dataset, endless, continuing after `start_batch` batches; validation
        dataset or None)."""
        raise NotImplementedError

    def shard_files(self, meta):
        """The shards read while fit runs (named when one turns out corrupt)."""
        return []

    # ------------------------------------------------------------------ model
    def check_config(self, replicas):
        """One-line ConfigErrors for settings that cannot build or split."""

    def build(self):
        """The TaskModel, built (its variables exist) but not compiled."""
        raise NotImplementedError

    def group_learning_rates(self):
        """{parameter group: learning rate}."""
        raise NotImplementedError

    def group_variables(self, model):
        raise NotImplementedError

    def learning_rate_schedule(self, group, learning_rate, steps_per_epoch):
        """A group's schedule: the rate divided at --lr_drop_epochs, held at 0 while the group
        is frozen (`frozen_steps`) and ramped up over --warmup_steps after that."""
        train = self.config.train
        schedule = optimizer_lib.step_schedule(learning_rate, train.lr_drop_epochs,
                                               train.lr_drop_factor, steps_per_epoch)
        return optimizer_lib.ramped(schedule, self.frozen_steps(group, steps_per_epoch),
                                    train.warmup_steps)

    def frozen_steps(self, group, steps_per_epoch):
        """Optimizer steps at the start during which `group` does not move."""
        return 0

    def weight_decay(self):
        """The L2 factor added to kernel gradients: one number, or {group: factor}."""
        return optimizer_lib.coupled_weight_decay(self.config.train)

    def compile_model(self, model, group_optimizers, group_variables, weight_decay, **kwargs):
        model.compile(group_optimizers, group_variables, weight_decay=weight_decay, **kwargs)

    def describe(self, model):
        """Short description for the start line, e.g. 'dacrl (1,234 parameters)'."""
        return f"{self.config.model} ({model.count_params():,} parameters)"

    def callbacks(self, model, log_dir, val_ds):
        """Task-specific callbacks (TensorBoard images)."""
        return []

    def training_check(self, val_ds, history):
        """(a summary entry, a line to print) about how training went, or None."""
        return None

    # ------------------------------------------------------------------ results
    def export(self, model, model_dir):
        raise NotImplementedError

    def evaluate(self, model_dir, **options):
        """{name: result dict}, each also written to model_dir; options come from the
        evaluate command (e.g. batch_size)."""
        return {}

    def summary_line(self, name, result):
        return f"{name}: {result}"


def check_global_batch(batch_size, replicas):
    """--batch_size is the global batch: it must split evenly over the replicas."""
    if batch_size % replicas:
        raise ConfigError(f"--batch_size={batch_size} is the global batch: it must divide "
                          f"evenly over the {replicas} replicas")


class ImageTableTask(Task):
    """A task on single images of one image table: an epoch is one pass over its training part,
    validation reads its held-out part. Subclasses give `table()` and
    `image_dataset(part, training, meta, start_batch)`."""

    def table(self):
        raise NotImplementedError

    def image_dataset(self, part, training, meta=None, start_batch=0):
        raise NotImplementedError

    def steps_per_epoch(self, meta):
        data, batch = self.config.data, self.config.train.batch_size
        count = schema.image_table(meta, data.data_dir, self.table())["count"]
        train = int(count * (1 - self.config.family.validation_fraction))
        if train < batch:
            raise ConfigError(f"{data.data_dir}: image table {self.table()!r} has about {train} "
                              f"training images, fewer than one batch of {batch}")
        return max(1, train // batch)

    def datasets(self, meta, start_batch):
        val_ds = self.image_dataset("validation", False, meta)
        if self.config.data.val_steps:
            val_ds = val_ds.take(self.config.data.val_steps)
        return self.image_dataset("train", True, meta, start_batch), val_ds

    def check_config(self, replicas):
        check_global_batch(self.config.train.batch_size, replicas)


TASKS = {}


def register_task(family, task_class):
    TASKS[family] = task_class


def make_task(config):
    if config.family_name not in TASKS:
        raise ConfigError(f"no task registered for the {config.family_name} models")
    return TASKS[config.family_name](config)
