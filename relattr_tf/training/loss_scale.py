"""Dynamic loss scaling shared by every optimizer of a model (mixed_float16).

Keras wraps only the optimizer passed to `compile` in a LossScaleOptimizer; our models step one
optimizer per parameter group, or two players with their own. Gradients of small losses
underflow in float16, so the loss is multiplied by a scale before differentiation and the
gradients divided by it after. One scale serves all optimizers: a step whose gradients are not
all finite is skipped by every optimizer and halves the scale; `growth_interval` finite steps
double it. Under a distribution strategy the decision is taken across replicas, as Keras'
LossScaleOptimizer takes it (merge_call; a cond may not call merge_call in a replica context).
"""
import keras
import tensorflow as tf


class LossScale(keras.layers.Layer):
    """The scale and its counter as weights, so checkpoints keep them."""

    def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000, **kwargs):
        super().__init__(**kwargs)
        self.growth_interval = growth_interval
        self.scale = self.add_weight(shape=(), dtype="float32", trainable=False,
                                     initializer=keras.initializers.Constant(initial_scale),
                                     name="scale", aggregation="none")
        self.good_steps = self.add_weight(shape=(), dtype="int64", trainable=False,
                                          initializer="zeros", name="good_steps",
                                          aggregation="none")

    def scale_loss(self, loss):
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads):
        inverse = 1.0 / self.scale
        return [None if g is None else tf.cast(g, tf.float32) * inverse for g in grads]

    def apply(self, updates):
        """updates: [(optimizer, grads, variables)] with unscaled grads; skipped when any
        gradient of any replica is not finite."""
        targets = [(optimizer, variables) for optimizer, _, variables in updates]
        grads = [list(g) for _, g, _ in updates]
        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            self._decide(_all_finite(grads), lambda: _apply(targets, grads))
            return

        def cross_replica(distribution, grads):
            finite = distribution.experimental_local_results(
                distribution.extended.call_for_each_replica(_all_finite, args=(grads,)))
            self._decide(tf.reduce_all(tf.stack(finite)), lambda: distribution.extended
                         .call_for_each_replica(lambda g: _apply(targets, g), args=(grads,)))

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(grads,))

    def _decide(self, finite, apply_fn):
        def on_finite():
            apply_fn()
            grow = self.good_steps + 1 >= self.growth_interval
            self.scale.assign(tf.where(grow, self.scale * 2.0, self.scale))
            self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64),
                                            self.good_steps + 1))

        def on_overflow():
            self.scale.assign(tf.maximum(self.scale / 2.0, 1.0))
            self.good_steps.assign(0)

        tf.cond(finite, on_finite, on_overflow)


def _all_finite(grads):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for group in grads
                          for g in group if g is not None])


def _apply(targets, grads):
    for (optimizer, variables), group in zip(targets, grads):
        optimizer.apply_gradients(zip(group, variables))
