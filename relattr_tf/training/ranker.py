"""Pairwise training of any pair model (p = P(a shows more)) with cross-entropy on t in {0, .5, 1}.

A thin keras.Model subclass owning only train_step / test_step; the network stays functional.
Two optimizers: one for the trunk, one for everything else (the paper's per-part learning
rates), both over one GradientTape.

Loss scaling: under a distribution strategy the optimizer *sums* replica gradients, so each
replica's loss must be its share of the global-batch mean. The Keras `BinaryCrossentropy`
object divides by the number of replicas itself; a hand-written `reduce_mean` would not, and
gives gradients num_replicas times too large (tests/test_training.py checks 1 vs 2 replicas).
"""
import keras
import tensorflow as tf
from keras import ops

from relattr_tf.models import trunk_of


def pair_correct(target, p):
    """1 where p orders the pair like t (p exactly 0.5 is wrong), weight 0 for equal pairs."""
    target = ops.reshape(ops.cast(target, "float32"), (-1,))
    p = ops.reshape(ops.cast(p, "float32"), (-1,))
    correct = ops.where(target > 0.5, ops.cast(p > 0.5, "float32"),
                        ops.cast(p < 0.5, "float32"))
    weight = ops.cast(ops.not_equal(target, 0.5), "float32")
    return correct, weight


@keras.saving.register_keras_serializable(package="relattr_tf")
class PairwiseRanker(keras.Model):
    """Trains `network` ((image_a, image_b) -> p) on ((image_a, image_b), target) batches."""

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.bce = keras.losses.BinaryCrossentropy(name="bce")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        trunk = trunk_of(network)
        trunk_ids = {id(v) for v in trunk.trainable_variables}
        self.trunk_variables = list(trunk.trainable_variables)
        self.head_variables = [v for v in network.trainable_variables if id(v) not in trunk_ids]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compile(self, trunk_optimizer, head_optimizer, **kwargs):
        super().compile(optimizer=None, **kwargs)
        self.trunk_optimizer, self.head_optimizer = trunk_optimizer, head_optimizer
        # Built here, not lazily: MirroredStrategy and checkpoint restore both need the slots.
        trunk_optimizer.build(self.trunk_variables)
        head_optimizer.build(self.head_variables)

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
            loss += tf.nn.scale_regularization_loss(sum(self.network.losses)) \
                if self.network.losses else 0.0
        grads = tape.gradient(loss, self.trunk_variables + self.head_variables)
        split = len(self.trunk_variables)
        self.trunk_optimizer.apply_gradients(zip(grads[:split], self.trunk_variables))
        self.head_optimizer.apply_gradients(zip(grads[split:], self.head_variables))
        return self._update_metrics(target, p, loss)

    def test_step(self, data):
        images, target = data[0], data[1]
        target = ops.reshape(ops.cast(target, "float32"), (-1, 1))
        p = self.network(images, training=False)
        return self._update_metrics(target, p, self.bce(target, ops.cast(p, "float32")))

    def learning_rates(self):
        """Current learning rates of both optimizers (for logging)."""
        return {"lr_trunk": self.trunk_optimizer.learning_rate,
                "lr_head": self.head_optimizer.learning_rate}
