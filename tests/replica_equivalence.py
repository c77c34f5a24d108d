"""Run as a script: one training step on 1 replica and on 2 (logical CPU) replicas, same global
batch and initial weights; prints the largest weight difference as JSON. With --naive the loss
is a hand-written mean (the Keras 3 pitfall), which must show a difference. With
--mixed_float16 the step runs under the float16 policy with the shared dynamic loss scale;
--model=NAME checks another pair model (DACRL by default)."""
import json
import sys

import tensorflow as tf

from relattr_tf.training import distribute

distribute.configure_cpu_devices(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from relattr_tf.config import Config, DataConfig, RankerConfig, TrainConfig  # noqa: E402
from relattr_tf.training import run  # noqa: E402
from relattr_tf.training.ranker import PairwiseRanker, RankerTask  # noqa: E402

CONFIG = Config(model="dacrl", data=DataConfig(image_size=32),
                train=TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=5e-3,
                                  lr_drop_epochs=(), seed=0),
                family=RankerConfig(width=0.125, cross_filters=8, head_units=16, trunk_lr=0.5,
                                    head_lr=0.5))


class NaiveMeanRanker(PairwiseRanker):
    def train_step(self, data):
        images, target = data
        with tf.GradientTape() as tape:
            p = self.network(images, training=True)
            loss = tf.reduce_mean(keras.ops.binary_crossentropy(tf.reshape(target, (-1, 1)), p))
        self.apply_gradients_of(tape, loss)
        return self._update_metrics(tf.reshape(target, (-1, 1)), p, loss)


def one_step(strategy, weights, batch, naive, config):
    with strategy.scope():
        task = RankerTask(config)
        ranker = task.build()
        if naive:
            ranker = NaiveMeanRanker(ranker.network)
        run.compile_model(ranker, task, config, steps_per_epoch=1)
        ranker.network.set_weights(weights)
    before = [w.copy() for w in weights]
    logs = ranker.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    after = ranker.network.get_weights()
    step = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
    return after, step, logs["loss"][0]


def main():
    naive = "--naive" in sys.argv
    config = CONFIG
    for arg in sys.argv[1:]:
        if arg.startswith("--model="):
            config = config.with_values(model=arg.split("=", 1)[1])
    if "--mixed_float16" in sys.argv:
        config = config.with_values(mixed_precision="mixed_float16")
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    task = RankerTask(config)
    network = task.build().network
    if config.model.startswith("deepstn"):
        # Push every box's centre out of the image, so the pull-back penalty is in the step.
        fc = task.parts.groups["localizer"][0].get_layer("loc_fc2")
        kernel, bias = fc.get_weights()
        fc.set_weights([kernel, bias + np.array([0.0, 10.0, -10.0], np.float32)])
    init = network.get_weights()
    rng = np.random.default_rng(0)
    batch = ((rng.uniform(size=(8, 32, 32, 3)).astype("float32"),
              rng.uniform(size=(8, 32, 32, 3)).astype("float32")),
             np.array([0, 1, 0.5, 1, 0, 0, 1, 0.5], "float32"))
    one, step_one, loss_one = one_step(tf.distribute.get_strategy(), init, batch, naive, config)
    two, step_two, loss_two = one_step(distribute.make_strategy("mirrored"), init, batch, naive,
                                       config)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    print(json.dumps(dict(max_weight_diff=diff, step_one=step_one, step_two=step_two,
                          loss_one=loss_one, loss_two=loss_two,
                          replicas=distribute.make_strategy("mirrored").num_replicas_in_sync)))


if __name__ == "__main__":
    main()
