"""Optimizers and step learning-rate schedules (Keras 3 built-ins; no tensorflow-addons)."""
import keras

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")


@keras.saving.register_keras_serializable(package="relattr_tf")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant rate as a schedule: unlike a plain float (kept in an optimizer variable and
    restored from checkpoints), it follows the flags when a run is resumed."""

    def __init__(self, learning_rate):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return keras.ops.convert_to_tensor(self.learning_rate, "float32")

    def get_config(self):
        return {"learning_rate": self.learning_rate}


def step_schedule(learning_rate, drop_epochs, factor, steps_per_epoch):
    """learning_rate, divided by `factor` at the start of each epoch in drop_epochs (0-based
    count of finished epochs, as "LR / 10 at epochs 5 and 12")."""
    if not drop_epochs:
        return ConstantSchedule(learning_rate)
    # PiecewiseConstantDecay reads `iterations` before the increment and keeps the old value on
    # a boundary, so the first step of epoch e (iteration e * spe) needs boundary e * spe - 1.
    boundaries = [e * steps_per_epoch - 1 for e in sorted(drop_epochs)]
    values = [learning_rate / factor ** k for k in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


@keras.saving.register_keras_serializable(package="relattr_tf")
class Ramped(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` held at 0 for the first `start` optimizer steps (a frozen group), then ramped
    linearly from 0 over `ramp` steps (a warm-up: Adam's first step is lr * sign(g) for every
    weight, which can switch a fresh head's ReLUs off at once)."""

    def __init__(self, schedule, start=0, ramp=0):
        self.schedule, self.start, self.ramp = schedule, int(start), int(ramp)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        since = step - self.start
        factor = keras.ops.cast(since >= 0, "float32")
        if self.ramp:
            factor = keras.ops.clip((since + 1.0) / self.ramp, 0.0, 1.0)
        return self.schedule(step) * factor

    def get_config(self):
        return dict(schedule=keras.optimizers.schedules.serialize(self.schedule),
                    start=self.start, ramp=self.ramp)

    @classmethod
    def from_config(cls, config):
        return cls(keras.optimizers.schedules.deserialize(config["schedule"]),
                   config["start"], config["ramp"])


def ramped(schedule, start=0, ramp=0):
    """`schedule` itself when nothing is frozen or warmed up, else Ramped."""
    return Ramped(schedule, start, ramp) if start or ramp else schedule


def make_optimizer(train, learning_rate, name):
    """A Keras optimizer for one parameter group from the TrainConfig section.

    Weight decay in mode "l2" is not the optimizer's: TaskModel adds wd * w to the gradient
    (coupled, as Caffe and Torch apply it); "decoupled" uses Keras' w -= lr * wd * w.
    """
    kwargs = dict(learning_rate=learning_rate, name=f"{train.optimizer}_{name}")
    decoupled = train.weight_decay_mode == "decoupled" or train.optimizer == "adamw"
    if train.weight_decay and decoupled:
        kwargs["weight_decay"] = train.weight_decay
    if train.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(rho=train.rho, epsilon=train.epsilon, **kwargs)
    elif train.optimizer == "adam":
        optimizer = keras.optimizers.Adam(epsilon=train.epsilon, **kwargs)
    elif train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(epsilon=train.epsilon, **dict(
            kwargs, weight_decay=kwargs.get("weight_decay", 0.004)))
    elif train.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(momentum=train.momentum, **kwargs)
    else:
        raise ValueError(f"unknown optimizer {train.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if "weight_decay" in kwargs or train.optimizer == "adamw":
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def coupled_weight_decay(train):
    """The L2 factor TaskModel adds to gradients (0 when decay is decoupled or off)."""
    decoupled = train.weight_decay_mode == "decoupled" or train.optimizer == "adamw"
    return 0.0 if decoupled else train.weight_decay
