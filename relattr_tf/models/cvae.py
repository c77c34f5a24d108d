"""Attribute2Image (Yan et al., ECCV 2016): a conditional VAE p(x | y, z) with q(z | x, y).

y is an image's attribute-strength vector, z (prior N(0, I)) everything else. The shapes follow
the reference (xcyan/eccv16_attr2img, arch_condVAE.lua) at 64 x 64, with every conv's channels
times `width` (1 = the reference):

  encoder  x: conv5 64 -> pool -> conv5 128 + BN -> pool -> conv3 256 + BN -> pool (S/8)
              -> conv3 stride 2, 256 + BN (S/16) -> conv valid 1024 (1 x 1) -> FC 1024
              + dropout 0.5;   y: FC z + ReLU
           mean of q from [x features, y embedding]; log-variance from x features only (its
           weights start at 0, so q starts as N(mean, I))
  decoder  y: FC 2z + ReLU; [z, y embedding] -> FC 256 + ReLU -> FC 256 (S/8)^2 -> conv3 256
           + BN -> three times (nearest upsample x2 -> conv5 256 / 128 / 64 + BN + ReLU)
           -> conv5 heads: mean (tanh, images in [-1, 1]) and per-pixel log-variance

Raw strengths go in: a standardising `StrengthScale` layer inside each model turns y into (y - mean) / std with
the training set's statistics, which are weights of the model, so they travel with it (unknown
strengths, NaN, become the mean); it computes in float32 under mixed precision, where float16
would round a strength near 1 to steps of 0.001-0.004. The decoder's log-variance has a soft floor (LOGVAR_FLOOR),
so the likelihood cannot run off to infinity on flat pixels.

Two options leave the reference's shapes: `fc_width` sets the FC layers' multiplier apart from
the convs' (the reference's FC widths at a quarter of its channels: at width 0.25 the decoder's
[z, y] of 192 values otherwise goes through 64 units), and `coordconv` feeds two coordinate
channels (x, y in [-1, 1]) into every conv, so a conv can place a subject anywhere (Liu et al.,
2018).
"""
import keras
from keras import layers, ops

from relattr_tf.models import strength_scale
from relattr_tf.models.blocks import PACKAGE, layer_seed
from relattr_tf.models.strength_scale import StrengthScale

LOGVAR_FLOOR = -9.0  # std e^-4.5 = 0.011 in [-1, 1] units: about one grey level


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftFloor(layers.Layer):
    """floor + softplus(x - floor): about x above the floor, never below it."""

    def __init__(self, floor=LOGVAR_FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.floor = floor

    def call(self, x):
        return self.floor + ops.softplus(x - self.floor)

    def get_config(self):
        return dict(super().get_config(), floor=self.floor)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AddCoords(layers.Layer):
    """Appends two channels, the pixel's column and row in [-1, 1] (CoordConv)."""

    def call(self, x):
        shape = ops.shape(x)
        height, width = shape[1], shape[2]
        rows = ops.linspace(-1.0, 1.0, height)
        cols = ops.linspace(-1.0, 1.0, width)
        grid = ops.stack(ops.meshgrid(cols, rows, indexing="xy"), axis=-1)
        grid = ops.broadcast_to(ops.cast(grid, x.dtype)[None], (shape[0], height, width, 2))
        return ops.concatenate([x, grid], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 2,)


def _coords(x, coordconv, name):
    return AddCoords(name=f"{name}_coords")(x) if coordconv else x


def _channels(filters, width):
    return max(4, int(round(filters * width)))


def _conv(x, filters, kernel, name, seed, strides=1, padding="same", batch_norm=True,
          activation="relu"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=not batch_norm,
                      kernel_initializer=keras.initializers.HeNormal(seed=layer_seed(seed, name)),
                      name=name)(x)
    if batch_norm:
        # Synchronised: batch statistics over the global batch, so replicas train one model.
        x = layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x) if activation else x


def _dense(units, name, seed, activation=None, zeros=False):
    init = "zeros" if zeros else keras.initializers.HeNormal(seed=layer_seed(seed, name))
    return layers.Dense(units, activation=activation, kernel_initializer=init, name=name)


def build_encoder(image_size, y_size, z_size, width=1.0, seed=None, fc_width=None,
                  coordconv=False, name="encoder"):
    """(image in [-1, 1], raw y) -> (mean, log-variance) of q(z | x, y). fc_width: the FC
    layers' multiplier (None: width)."""
    if image_size % 16:
        raise ValueError(f"the CVAE needs an image size divisible by 16, got {image_size}")
    fc_width = width if fc_width is None else fc_width
    image = keras.Input((image_size, image_size, 3), name="image")
    y = keras.Input((y_size,), name="y")
    x = _conv(_coords(image, coordconv, "enc_conv1"), _channels(64, width), 5, "enc_conv1",
              seed, batch_norm=False)
    x = layers.MaxPooling2D(2, name="enc_pool1")(x)
    x = _conv(_coords(x, coordconv, "enc_conv2"), _channels(128, width), 5, "enc_conv2", seed)
    x = layers.MaxPooling2D(2, name="enc_pool2")(x)
    x = _conv(_coords(x, coordconv, "enc_conv3"), _channels(256, width), 3, "enc_conv3", seed)
    x = layers.MaxPooling2D(2, name="enc_pool3")(x)
    x = _conv(x, _channels(256, width), 3, "enc_conv4", seed, strides=2)
    x = _conv(x, _channels(1024, width), image_size // 16, "enc_conv5", seed, padding="valid")
    x = layers.Flatten(name="enc_flatten")(x)
    x = _dense(_channels(1024, fc_width), "enc_fc", seed, activation="relu")(x)
    x = layers.Dropout(0.5, seed=layer_seed(seed, "enc_dropout"), name="enc_dropout")(x)
    y_embedding = _dense(z_size, "enc_y_fc", seed, activation="relu")(
        StrengthScale(y_size, name="enc_standardize", dtype="float32")(y))
    both = layers.Concatenate(name="enc_concat")([x, y_embedding])
    mean = _dense(z_size, "enc_mean", seed)(both)
    logvar = _dense(z_size, "enc_logvar", seed, zeros=True)(x)
    return keras.Model([image, y], [mean, logvar], name=name)


def decoder_features(y, z, image_size, width, seed, fc_width=None, coordconv=False,
                     prefix="dec"):
    """[z, y embedding] (y None: z alone) -> the last upsampling stage's features (S x S)."""
    fc_width = width if fc_width is None else fc_width
    z_size = z.shape[-1]
    start, channels = image_size // 8, _channels(256, width)
    x = z
    if y is not None:
        y_size = y.shape[-1]
        y_embedding = _dense(2 * z_size, f"{prefix}_y_fc", seed, activation="relu")(
            StrengthScale(y_size, name=f"{prefix}_standardize", dtype="float32")(y))
        x = layers.Concatenate(name=f"{prefix}_concat")([z, y_embedding])
    x = _dense(_channels(256, fc_width), f"{prefix}_fc1", seed, activation="relu")(x)
    x = _dense(start * start * channels, f"{prefix}_fc2", seed, activation="relu")(x)
    x = layers.Reshape((start, start, channels), name=f"{prefix}_reshape")(x)
    x = _conv(_coords(x, coordconv, f"{prefix}_conv0"), channels, 3, f"{prefix}_conv0", seed)
    for i, filters in enumerate((256, 128, 64), start=1):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}_up{i}")(x)
        x = _conv(_coords(x, coordconv, f"{prefix}_conv{i}"), _channels(filters, width), 5,
                  f"{prefix}_conv{i}", seed)
    return x


def build_decoder(image_size, y_size, z_size, width=1.0, seed=None, fc_width=None,
                  coordconv=False):
    """(raw y, z) -> (mean image in [-1, 1], per-pixel log-variance)."""
    if image_size % 16:
        raise ValueError(f"the CVAE needs an image size divisible by 16, got {image_size}")
    y = keras.Input((y_size,), name="y")
    z = keras.Input((z_size,), name="z")
    x = decoder_features(y, z, image_size, width, seed, fc_width, coordconv)
    mean = layers.Conv2D(3, 5, padding="same", activation="tanh", dtype="float32",
                         kernel_initializer=keras.initializers.GlorotUniform(
                             seed=layer_seed(seed, "dec_mean")), name="dec_mean")(x)
    logvar = layers.Conv2D(3, 5, padding="same", dtype="float32", kernel_initializer="zeros",
                           name="dec_logvar_raw")(x)
    logvar = SoftFloor(name="dec_logvar", dtype="float32")(logvar)
    return keras.Model([y, z], [mean, logvar], name="decoder")


def strength_statistics_of(model):
    """(mean, std) numpy arrays stored in a model's first standardising layer."""
    return strength_scale.statistics_of(model)


def set_strength_statistics(model, mean, std):
    """Stores the training set's strength statistics in every standardising layer of a model."""
    strength_scale.set_statistics(model, mean, std)
