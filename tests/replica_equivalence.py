"""Run as a script: one training step on 1 replica and on 2 (logical CPU) replicas, same global
batch and initial weights; prints the largest weight difference as JSON. With --naive the loss
is a hand-written mean (the Keras 3 pitfall), which must show a difference. With
--mixed_float16 the step runs under the float16 policy with the shared dynamic loss scale;
--model=NAME checks another model (DACRL by default): any pair model, vgg16_scenes (the
pretraining task), cvae or attic (both players' steps, an untrained generator);
--set=NAME=VALUE changes one config setting (a CVAE's --likelihood, say); --steps=N takes N
steps on the batch (a state held between steps, as the pretraining's balance weights)."""
import json
import sys

import tensorflow as tf

from relattr_tf.training import distribute

distribute.configure_cpu_devices(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from relattr_tf import config as config_lib  # noqa: E402
from relattr_tf.config import Config, DataConfig, RankerConfig, TrainConfig  # noqa: E402
from relattr_tf.training import run, task as task_lib  # noqa: E402
from relattr_tf.training.ranker import PairwiseRanker  # noqa: E402

TRAIN = TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=5e-3, lr_drop_epochs=(), seed=0)
FAMILY_SECTIONS = {
    "ranker": RankerConfig(width=0.125, cross_filters=8, head_units=16, trunk_lr=0.5,
                           head_lr=0.5),
    "pretrain": config_lib.PretrainConfig(width=0.125, head_units=16, trunk_lr=0.5, head_lr=0.5),
    "generator": config_lib.GeneratorConfig(z_size=4, cvae_width=0.0625, generator_lr=0.05),
}
Y_SIZE = 3


class NaiveMeanRanker(PairwiseRanker):
    def train_step(self, data):
        images, target = data
        with tf.GradientTape() as tape:
            p = self.network(images, training=True)
            loss = tf.reduce_mean(keras.ops.binary_crossentropy(tf.reshape(target, (-1, 1)), p))
        self.apply_gradients_of(tape, loss)
        return self._update_metrics(tf.reshape(target, (-1, 1)), p, loss)


def make_task(config):
    if config.family_name == "pretrain":
        from relattr_tf.data.synthetic import render
        from relattr_tf.training.pretrain import PretrainTask
        return PretrainTask(config, heads=render.LABEL_HEADS)
    if config.family_name == "generator":
        from relattr_tf.training.generators import generator_task
        extra = {"masked": True} if config.model == "layered_cvae" else {}
        return generator_task(config, statistics=dict(names=["a", "b", "c"],
                                                      mean=[0.5, 0.0, 2.0], std=[0.1, 1.0, 3.0],
                                                      min=[0, -2, -4], max=[1, 2, 8]), **extra)
    return task_lib.make_task(config)


def without_randomness(model):
    """Dropout masks and posterior samples of one batch and of two half batches differ:
    switched off here, the test is about how the loss is scaled."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    if hasattr(model, "sample_posterior"):
        model.sample_posterior = False
    return model


def batch_for(config, rng):
    size = config.data.image_size
    images = lambda: rng.uniform(size=(8, size, size, 3)).astype("float32")
    if config.family_name == "pretrain":
        from relattr_tf.data.synthetic import render
        columns = [rng.integers(0, h["size"], (8, 1)) if h["kind"] == "softmax" else
                   rng.integers(0, 2, (8, h["size"])) for h in render.LABEL_HEADS]
        return images(), np.concatenate(columns, axis=1).astype("float32")
    if config.family_name == "generator":
        y = rng.normal(size=(8, Y_SIZE)).astype("float32")
        y[0, 1] = np.nan  # an unknown strength
        if config.model == "layered_cvae":  # the subject mask as a fourth channel
            mask = (rng.uniform(size=(8, size, size, 1)) > 0.7).astype("float32")
            return np.concatenate([images(), mask], axis=-1), y
        return images(), y
    return (images(), images()), np.array([0, 1, 0.5, 1, 0, 0, 1, 0.5], "float32")


def one_step(strategy, weights, batch, naive, config, steps=1):
    with strategy.scope():
        task = make_task(config)
        model = without_randomness(task.build())
        if naive:
            model = NaiveMeanRanker(model.network)
        run.compile_model(model, task, config, steps_per_epoch=1)
        model.set_weights(weights)
    before = [w.copy() for w in weights]
    logs = model.fit(tf.data.Dataset.from_tensors(batch).repeat(steps), epochs=1,
                     verbose=0).history
    # The step is of the learned weights only: a step counter (the CVAE's warm-up) would count
    # as a step of 1, the pretraining's balance weights move from 1 by far more than a step.
    learned = [not w.path.endswith(("steps_taken", "balance_weights")) for w in model.weights]
    after = model.get_weights()  # all of them must match between one and two replicas
    step = max(float(np.abs(a - b).max()) for a, b, keep in zip(after, before, learned)
               if keep)
    return after, step, logs["loss"][0]


def main():
    naive = "--naive" in sys.argv
    model_name = "dacrl"
    for arg in sys.argv[1:]:
        if arg.startswith("--model="):
            model_name = arg.split("=", 1)[1]
    family = config_lib.family_of(model_name)
    if family == "attic":
        import tempfile
        from tests import attic_fixtures
        generator = attic_fixtures.make_generator(tempfile.mkdtemp())
        config = attic_fixtures.attic_config(generator, trunk_lr=0.5, head_lr=0.5,
                                             control_lr=0.5)
        config = config.with_values(optimizer="sgd", momentum=0.0, weight_decay=5e-3)
    else:
        config = Config(model=model_name, data=DataConfig(image_size=32), train=TRAIN,
                        family=FAMILY_SECTIONS[family])
    for arg in sys.argv[1:]:  # --set=name=value: one more config setting (JSON or text)
        if arg.startswith("--set="):
            name, value = arg[len("--set="):].split("=", 1)
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
            config = config.with_values(**{name: value})
    if "--mixed_float16" in sys.argv:
        config = config.with_values(mixed_precision="mixed_float16")
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    task = make_task(config)
    model = task.build()
    if config.model.startswith("deepstn") or getattr(config.family, "ranker_model",
                                                      "").startswith("deepstn"):
        # Push every box's centre out of the image, so the pull-back penalty is in the step.
        fc = task.parts.groups["localizer"][0].get_layer("loc_fc2")
        kernel, bias = fc.get_weights()
        fc.set_weights([kernel, bias + np.array([0.0, 10.0, -10.0], np.float32)])
    init = model.get_weights()
    batch = batch_for(config, np.random.default_rng(0))
    steps = next((int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--steps=")), 1)
    one, step_one, loss_one = one_step(tf.distribute.get_strategy(), init, batch, naive, config,
                                       steps)
    two, step_two, loss_two = one_step(distribute.make_strategy("mirrored"), init, batch, naive,
                                       config, steps)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    print(json.dumps(dict(max_weight_diff=diff, step_one=step_one, step_two=step_two,
                          loss_one=loss_one, loss_two=loss_two,
                          replicas=distribute.make_strategy("mirrored").num_replicas_in_sync)))


if __name__ == "__main__":
    main()
