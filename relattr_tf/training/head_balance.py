"""Balanced head gradients for a model whose loss is a sum of per-head terms (the pretraining's
--balanced_heads): the heads form groups, each group's pull on the shared layers is the norm of
its gradient over the global batch, and each head is weighted so that every group pulls with the
mean of those norms. The model holds the weights and decides when they are measured."""
import numpy as np
import tensorflow as tf
from keras import ops


def groups(heads, balanced_heads):
    """The groups, as lists of head indices: each head alone (balanced_heads == ("each",)), or
    the named heads and the rest."""
    if tuple(balanced_heads) == ("each",):
        return [[i] for i in range(len(heads))]
    named = [i for i, h in enumerate(heads) if h["name"] in balanced_heads]
    return [named, [i for i in range(len(heads)) if i not in named]]


def pull_norms(tape, terms, shared, head_groups, measuring):
    """Each group's pull on the `shared` variables: the norm of its terms' gradient over the
    global batch (summed over replicas). terms: (heads,) recorded on the persistent `tape`;
    measuring: a boolean tensor, or None for every step; where it is false the norms are zeros
    and no gradient is taken."""
    masks = [ops.convert_to_tensor(np.isin(np.arange(ops.shape(terms)[0]), group), "float32")
             for group in head_groups]

    def pulls():
        return [tape.gradient(terms, shared, output_gradients=m) for m in masks]

    def norms(group_pulls):
        return ops.stack([tf.linalg.global_norm(p) for p in group_pulls])
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        if measuring is None:
            return norms(pulls())
        return tf.cond(measuring, lambda: norms(pulls()), lambda: tf.zeros(len(masks)))
    # A replica sum cannot sit inside a cond: the cond gives zeros, summed as well.
    summed = pulls() if measuring is None else tf.cond(
        measuring, pulls, lambda: [[tf.zeros_like(v) for v in shared] for _ in masks])
    context = tf.distribute.get_replica_context()
    return norms([context.all_reduce(tf.distribute.ReduceOp.SUM, p) for p in summed])


def weights_of(norms, head_groups):
    """Each head's weight: its group's pull scaled to the mean of the groups' pulls. A group
    that does not pull (a curriculum's waiting heads) keeps 1 and is left out of the mean."""
    pulling = ops.cast(norms > 0, "float32")
    mean = ops.sum(norms) / ops.maximum(ops.sum(pulling), 1.0)
    scales = ops.where(norms > 0, mean / ops.maximum(norms, 1e-30), 1.0)
    index = np.zeros(sum(len(g) for g in head_groups), np.int32)
    for g, group in enumerate(head_groups):
        index[group] = g
    return ops.take(scales, index)
