"""Where a pair model looks: input-gradient saliency (any pair model) and DACRL's channel
attention, and how much of a map falls inside the subject's box.

Saliency follows Simonyan et al. (2014), as the DACRL paper shows it: the gradient of the
pair's logit (not of p, which saturates and is clipped) with respect to each input pixel,
its absolute value maximised over the colour channels. Optionally SmoothGrad (Smilkov et al.
2017): the mean over noisy copies of the inputs.
"""
import keras
import numpy as np
import tensorflow as tf


def pair_logit(parts):
    """(image_a, image_b) -> logit of p (B,), for every pair model: v_a - v_b for score models,
    DACRL's comparator up to its last Dense for feature models."""
    if parts.scorer is not None:
        scorer = parts.scorer
        return lambda a, b: tf.reshape(scorer(a, training=False) - scorer(b, training=False),
                                       [-1])
    comparator = parts.comparator
    head = keras.Model(comparator.inputs, comparator.get_layer("head_logit").output)
    encoder = parts.encoder
    return lambda a, b: tf.reshape(
        head([encoder(a, training=False), encoder(b, training=False)], training=False), [-1])


def pair_saliency(parts, images_a, images_b, smoothgrad_samples=0, noise=0.1, seed=0):
    """(saliency_a, saliency_b), each (B, H, W) >= 0: |d logit / d pixel|, max over channels."""
    logit = pair_logit(parts)
    images_a = tf.constant(images_a, tf.float32)
    images_b = tf.constant(images_b, tf.float32)
    rng = tf.random.Generator.from_seed(seed)
    draws = max(1, smoothgrad_samples)
    total_a = total_b = 0.0
    for _ in range(draws):
        a, b = images_a, images_b
        if smoothgrad_samples:
            a = a + rng.normal(tf.shape(a), stddev=noise)
            b = b + rng.normal(tf.shape(b), stddev=noise)
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            value = tf.reduce_sum(logit(a, b))
        grad_a, grad_b = tape.gradient(value, [a, b])
        total_a += tf.reduce_max(tf.abs(grad_a), axis=-1)
        total_b += tf.reduce_max(tf.abs(grad_b), axis=-1)
    return (total_a / draws).numpy(), (total_b / draws).numpy()


def attention(parts, images_a, images_b):
    """DACRL's channel attention on pairs: (weights (B, 2C), features (B, h, w, 2C)); channels
    [0, C) are image a's trunk features, [C, 2C) image b's."""
    comparator = parts.comparator
    try:
        weights_layer = comparator.get_layer("attention_fc2")
    except ValueError:
        raise ValueError("this model has no attention block (dacrl_noatt, or not DACRL); "
                         "--kind=attention needs --model=dacrl") from None
    probe = keras.Model(comparator.inputs, [weights_layer.output,
                                            comparator.get_layer("cross_concat").output])
    features_a = parts.encoder(tf.constant(images_a, tf.float32), training=False)
    features_b = parts.encoder(tf.constant(images_b, tf.float32), training=False)
    weights, features = probe([features_a, features_b], training=False)
    return np.asarray(weights, np.float32), np.asarray(features, np.float32)


def attended_maps(weights, features):
    """Per image of each pair, its feature maps summed with their attention weights:
    (map_a, map_b), each (B, h, w) >= 0 (the features are ReLU outputs)."""
    channels = features.shape[-1] // 2
    weighted = features * weights[:, None, None, :]
    return weighted[..., :channels].sum(-1), weighted[..., channels:].sum(-1)


def box_mask(box, height, width):
    """(H, W) boolean: pixel centres inside [ymin, xmin, ymax, xmax] (in [0, 1])."""
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    return ((ys[:, None] >= box[0]) & (ys[:, None] <= box[2])
            & (xs[None, :] >= box[1]) & (xs[None, :] <= box[3]))


def mass_inside(maps, boxes):
    """(share of each map's mass inside its box, the box's share of the image: what a uniform
    map would give), over the maps whose box is known (box[0] >= 0) and whose mass is > 0.
    Pass maps at the image's resolution (`upsample` coarser ones)."""
    shares, areas = [], []
    for heat, box in zip(maps, boxes):
        heat = np.asarray(heat, np.float32)
        if box[0] < 0 or heat.sum() <= 0:
            continue
        mask = box_mask(box, *heat.shape)
        shares.append(float(heat[mask].sum() / heat.sum()))
        areas.append(float(mask.mean()))
    return np.asarray(shares), np.asarray(areas)


def upsample(maps, size):
    """(B, h, w) -> (B, size, size), bilinear."""
    return tf.image.resize(np.asarray(maps, np.float32)[..., None], (size, size))[..., 0].numpy()
