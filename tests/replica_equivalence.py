"""Run as a script: one training step on 1 replica and on 2 (logical CPU) replicas, same global
batch and initial weights; prints the largest weight difference as JSON. With --naive the loss
is a hand-written mean (the Keras 3 pitfall), which must show a difference."""
import json
import sys

import tensorflow as tf

from relattr_tf.training import distribute

distribute.configure_cpu_devices(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from relattr_tf.config import TrainConfig  # noqa: E402
from relattr_tf.training import run  # noqa: E402
from relattr_tf.training.ranker import PairwiseRanker  # noqa: E402


class NaiveMeanRanker(PairwiseRanker):
    def train_step(self, data):
        images, target = data
        with tf.GradientTape() as tape:
            p = self.network(images, training=True)
            loss = tf.reduce_mean(keras.ops.binary_crossentropy(tf.reshape(target, (-1, 1)), p))
        variables = self.trunk_variables + self.head_variables
        grads = tape.gradient(loss, variables)
        split = len(self.trunk_variables)
        self.trunk_optimizer.apply_gradients(zip(grads[:split], self.trunk_variables))
        self.head_optimizer.apply_gradients(zip(grads[split:], self.head_variables))
        return self._update_metrics(tf.reshape(target, (-1, 1)), p, loss)


def one_step(strategy, weights, batch, naive):
    config = TrainConfig(image_size=32, width=0.125, cross_filters=8, head_units=16,
                         optimizer="sgd", trunk_lr=0.5, head_lr=0.5, weight_decay=0.0,
                         lr_drop_epochs=(), seed=0)
    with strategy.scope():
        ranker = run.build_ranker(config, steps_per_epoch=1)
        if naive:
            ranker = NaiveMeanRanker(ranker.network)
            ranker.compile(keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5))
        ranker.network.set_weights(weights)
    before = [w.copy() for w in weights]
    logs = ranker.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    after = ranker.network.get_weights()
    step = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
    return after, step, logs["loss"][0]


def main():
    naive = "--naive" in sys.argv
    keras.utils.set_random_seed(0)
    init = run.build_ranker(TrainConfig(image_size=32, width=0.125, cross_filters=8,
                                        head_units=16, seed=0), 1).network.get_weights()
    rng = np.random.default_rng(0)
    batch = ((rng.uniform(size=(8, 32, 32, 3)).astype("float32"),
              rng.uniform(size=(8, 32, 32, 3)).astype("float32")),
             np.array([0, 1, 0.5, 1, 0, 0, 1, 0.5], "float32"))
    one, step_one, loss_one = one_step(tf.distribute.get_strategy(), init, batch, naive)
    two, step_two, loss_two = one_step(distribute.make_strategy("mirrored"), init, batch, naive)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
    print(json.dumps(dict(max_weight_diff=diff, step_one=step_one, step_two=step_two,
                          loss_one=loss_one, loss_two=loss_two,
                          replicas=distribute.make_strategy("mirrored").num_replicas_in_sync)))


if __name__ == "__main__":
    main()
