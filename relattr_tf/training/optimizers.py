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


def make_optimizer(name, learning_rate, weight_decay=0.0, momentum=0.9, name_suffix=""):
    """A Keras optimizer; weight decay is decoupled (w -= lr * wd * w) and skips biases."""
    kwargs = dict(learning_rate=learning_rate, name=f"{name}{name_suffix}")
    if weight_decay:
        kwargs["weight_decay"] = weight_decay
    if name == "rmsprop":
        optimizer = keras.optimizers.RMSprop(**kwargs)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(**kwargs)
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(**dict(kwargs, weight_decay=weight_decay or 0.004))
    elif name == "sgd":
        optimizer = keras.optimizers.SGD(momentum=momentum, **kwargs)
    else:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    if weight_decay or name == "adamw":
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer
