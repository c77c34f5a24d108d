"""Small building blocks shared by the models, with deterministic layer names."""
import zlib

import keras
import tensorflow as tf
from keras import layers, ops

PACKAGE = "relattr_tf"


def layer_seed(seed, name):
    """A seed of its own for each named layer. Keras 3 turns an integer seed into the same
    stateless draw on every call, so one seed shared by several layers would start kernels of
    the same shape identical."""
    return None if seed is None else zlib.crc32(f"{seed}/{name}".encode("utf-8"))


def new_layer_initializers(seed, name, scheme="paper"):
    """Initialisation of a layer added on top of a trunk. paper: the papers' N(0, 0.01), biases
    0.01 (a stack of such layers scales the signal by about 0.01 sqrt(fan-in) each: DACRL's
    three shrink it some 250-fold at width 0.25); he: He-normal kernels, zero biases."""
    if scheme == "he":
        return dict(kernel_initializer=keras.initializers.HeNormal(seed=layer_seed(seed, name)),
                    bias_initializer="zeros")
    return dict(kernel_initializer=keras.initializers.RandomNormal(
                    stddev=0.01, seed=layer_seed(seed, name)),
                bias_initializer=keras.initializers.Constant(0.01))


@keras.saving.register_keras_serializable(package=PACKAGE)
class SplitPairs(layers.Layer):
    """Splits a batch [a; b] of 2N along the batch axis into (a, b): the inverse of stacking
    both images of each pair, so the trunk runs once on 2N images."""

    def call(self, x):
        return tuple(ops.split(x, 2, axis=0))

    def compute_output_shape(self, input_shape):
        half = None if input_shape[0] is None else input_shape[0] // 2
        shape = (half,) + tuple(input_shape[1:])
        return shape, shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipProbability(layers.Layer):
    """Clips p into [eps, 1 - eps] so the cross-entropy stays finite (DACRL: eps = 1e-7)."""

    def __init__(self, epsilon=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, p):
        return ops.clip(p, self.epsilon, 1.0 - self.epsilon)

    def get_config(self):
        return dict(super().get_config(), epsilon=self.epsilon)


def apply_siamese(trunk, image_a, image_b, name):
    """Runs one shared trunk on both images in a single call; returns (features_a, features_b)."""
    both = layers.Concatenate(axis=0, name=f"{name}_stack")([image_a, image_b])
    return SplitPairs(name=f"{name}_split")(trunk(both))


def score_pair_model(scorer, image_size, name):
    """The pair network of a score model: p = sigmoid(v_a - v_b), the scorer shared (run once
    on both images), p clipped as DACRL's."""
    image_a = keras.Input((image_size, image_size, 3), name="image_a")
    image_b = keras.Input((image_size, image_size, 3), name="image_b")
    score_a, score_b = apply_siamese(scorer, image_a, image_b, name="siamese")
    # float32 under any policy: the loss is taken from this logit.
    logit = layers.Subtract(name="score_difference", dtype="float32")([score_a, score_b])
    p = layers.Activation("sigmoid", dtype="float32", name="p_sigmoid")(logit)
    p = ClipProbability(1e-7, dtype="float32", name="p")(p)
    return keras.Model([image_a, image_b], p, name=name)


def score_pair_logits(network):
    """(image_a, image_b) -> v_a - v_b, the logit of a score_pair_model's p (its weights)."""
    return keras.Model(network.inputs, network.get_layer("score_difference").output,
                       name=f"{network.name}_logits")


def apply_vgg_block(x, filters, convs, block, pool=True, kernel_initializer="glorot_uniform"):
    """`convs` 3x3 ReLU convolutions then 2x2 max pooling, named as Keras' VGG16."""
    for i in range(1, convs + 1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                          kernel_initializer=kernel_initializer,
                          name=f"block{block}_conv{i}")(x)
    if pool:
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return x


def apply_channel_attention(x, reduction, name="attention", seed=None, init="paper"):
    """SE-style channel attention: GAP -> FC (C / reduction, ReLU) -> FC (C, sigmoid) -> x * w."""
    channels = x.shape[-1]
    w = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    w = layers.Dense(max(1, channels // reduction), activation="relu", name=f"{name}_fc1",
                     **new_layer_initializers(seed, f"{name}_fc1", init))(w)
    w = layers.Dense(channels, activation="sigmoid", name=f"{name}_fc2",
                     **new_layer_initializers(seed, f"{name}_fc2", init))(w)
    w = layers.Reshape((1, 1, channels), name=f"{name}_weights")(w)
    return layers.Multiply(name=f"{name}_scale")([x, w])


def apply_cross_conv(x, filters, depth, name="cross", seed=None, init="paper"):
    """The cross-image convolution fM: `depth` 3x3 ReLU convolutions over the joint features."""
    for i in range(1, depth + 1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}",
                          **new_layer_initializers(seed, f"{name}_conv{i}", init))(x)
    return x


def apply_pool(x, pool, name):
    """'gap' (global average pooling) or 'flatten' (keeps the spatial layout, many weights)."""
    if pool == "gap":
        return layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    if pool == "flatten":
        return layers.Flatten(name=f"{name}_flatten")(x)
    raise ValueError(f"unknown head pooling {pool!r}; use gap or flatten")


def box_transform(scale, tx, ty):
    """The spatial transformer's affine map for a square box, as the DeepSTN reference builds
    it: theta = [[s, 0, s*tx], [0, s, s*ty]] in normalised [-1, 1] coordinates (s = 1, t = 0 is
    the whole image). Inputs (B,) or (B, 1); output (B, 2, 3)."""
    scale, tx, ty = (ops.reshape(ops.cast(v, "float32"), (-1,)) for v in (scale, tx, ty))
    zero = ops.zeros_like(scale)
    return ops.stack([ops.stack([scale, zero, scale * tx], axis=-1),
                      ops.stack([zero, scale, scale * ty], axis=-1)], axis=1)


def box_outside_penalty(scale, tx, ty):
    """Pulls a box that leaves the image back in: 0.5 * (s*t)^2 summed over the coordinates
    where |s*t| > 1, per image. Its gradient there is the one the reference substitutes."""
    penalty = 0.0
    for t in (tx, ty):
        offset = ops.reshape(ops.cast(scale * t, "float32"), (-1,))
        outside = ops.cast(ops.abs(offset) > 1.0, "float32")
        penalty = penalty + 0.5 * outside * offset ** 2
    return penalty


@keras.saving.register_keras_serializable(package=PACKAGE)
class BilinearSampler(layers.Layer):
    """Samples `images` on the grid of an affine map (the spatial transformer's sampler).

    Written with gathers so gradients reach the transform: keras.ops.image.affine_transform
    has none with respect to it on TensorFlow. Output pixel (i, j) of an (H', W') grid has
    normalised target coordinates (x_t, y_t) in [-1, 1]; its source point is
    theta @ [x_t, y_t, 1], read bilinearly from the image, zero outside it.
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = tuple(int(s) for s in output_size)

    def call(self, images, theta):
        images = tf.convert_to_tensor(images)
        height, width = self.output_size
        in_h, in_w = tf.shape(images)[1], tf.shape(images)[2]
        ys, xs = tf.meshgrid(tf.linspace(-1.0, 1.0, height), tf.linspace(-1.0, 1.0, width),
                             indexing="ij")
        grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]),
                         tf.ones([height * width])])                      # (3, H'W')
        source = tf.einsum("bij,jn->bin", tf.cast(theta, tf.float32), grid)  # (B, 2, H'W')
        x = (source[:, 0] + 1.0) * 0.5 * tf.cast(in_w - 1, tf.float32)
        y = (source[:, 1] + 1.0) * 0.5 * tf.cast(in_h - 1, tf.float32)
        x0, y0 = tf.floor(x), tf.floor(y)
        # Bilinear weights as (x - x0, 1 - (x - x0)), not 1 - |x - xi|: the gradient of abs is
        # 0 at 0, which would lose the slope where a sample falls on a whole pixel.
        fx, fy = x - x0, y - y0
        out = 0.0
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            xi, yi = x0 + dx, y0 + dy
            weight = (fx if dx else 1.0 - fx) * (fy if dy else 1.0 - fy)
            inside = ((xi >= 0) & (xi <= tf.cast(in_w - 1, tf.float32))
                      & (yi >= 0) & (yi <= tf.cast(in_h - 1, tf.float32)))
            xi = tf.clip_by_value(tf.cast(xi, tf.int32), 0, in_w - 1)
            yi = tf.clip_by_value(tf.cast(yi, tf.int32), 0, in_h - 1)
            pixels = tf.gather_nd(images, tf.stack([yi, xi], axis=-1), batch_dims=1)
            out += pixels * tf.cast((weight * tf.cast(inside, tf.float32))[..., None],
                                    images.dtype)
        return tf.reshape(out, [-1, height, width, images.shape[-1]])

    def compute_output_shape(self, images_shape, theta_shape):
        return (images_shape[0],) + self.output_size + (images_shape[-1],)

    def get_config(self):
        return dict(super().get_config(), output_size=self.output_size)
