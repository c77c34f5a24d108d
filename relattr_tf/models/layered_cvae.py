"""The layered Attribute2Image (Yan et al., ECCV 2016; the reference's disCVAE,
arch_disCVAE.lua): a foreground and a background, each with its own latent, composed by a gate.

  foreground encoder  q(z_fg | x * m, y): the masked image and y (cvae.build_encoder's shapes)
  background encoder  q(z_bg | x, y, z_fg): the whole image, y and z_fg
  foreground decoder  (y, z_fg) -> f, the masked foreground (tanh), and g, the gate: the
                      background's share of each pixel (sigmoid)
  background decoder  z_bg -> b (tanh); with background_y, (y, z_bg) -> b: the reference's
                      reads z_bg alone, but where y acts on the whole picture (the benchmark's
                      brightness, warmth and contrast) it must reach the background's pixels
  image               x_hat = f + g * b, in [-1, 1]

Each decoder has the plain CVAE's decoder stages (cvae.decoder_features). The artifact ATTIC
loads (`build_layered_decoder`) has the plain decoder's interface: (raw y, z) -> (mean,
log-variance), with z = [z_fg, z_bg] and a log-variance of zeros (the layered model has no
variance head; ATTIC reads the mean).
"""
import keras
from keras import layers, ops

from relattr_tf.models import cvae
from relattr_tf.models.blocks import PACKAGE, layer_seed


@keras.saving.register_keras_serializable(package=PACKAGE)
class Columns(layers.Layer):
    """x[:, start:stop]: one latent out of the concatenated z."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[:, self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.stop - self.start)

    def get_config(self):
        return dict(super().get_config(), start=self.start, stop=self.stop)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Compose(layers.Layer):
    """[f, g, b] -> f + g * b, clipped to [-1, 1]."""

    def call(self, inputs):
        f, g, b = inputs
        return ops.clip(f + g * b, -1.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZerosLike(layers.Layer):
    def call(self, x):
        return ops.zeros_like(x)


def _head(x, channels, activation, name, seed):
    init = keras.initializers.GlorotUniform(seed=layer_seed(seed, name))
    return layers.Conv2D(channels, 5, padding="same", activation=activation, dtype="float32",
                         kernel_initializer=init, name=name)(x)


def build_foreground_encoder(image_size, y_size, z_size, width, seed=None, fc_width=None,
                             coordconv=False):
    """(masked image in [-1, 1], raw y) -> (mean, log-variance) of q(z_fg | x * m, y)."""
    return cvae.build_encoder(image_size, y_size, z_size, width, seed, fc_width, coordconv,
                              name="foreground_encoder")


def build_background_encoder(image_size, y_size, z_fg_size, z_size, width, seed=None,
                             fc_width=None, coordconv=False):
    """(image in [-1, 1], [raw y, z_fg]) -> (mean, log-variance) of q(z_bg | x, y, z_fg). The
    standardising layer's last z_fg_size columns keep mean 0, std 1 (z_fg is N(0, I))."""
    return cvae.build_encoder(image_size, y_size + z_fg_size, z_size, width, seed, fc_width,
                              coordconv, name="background_encoder")


def build_foreground_decoder(image_size, y_size, z_size, width, seed=None, fc_width=None,
                             coordconv=False):
    """(raw y, z_fg) -> (f in [-1, 1], gate g in [0, 1])."""
    y = keras.Input((y_size,), name="y")
    z = keras.Input((z_size,), name="z_fg")
    x = cvae.decoder_features(y, z, image_size, width, seed, fc_width, coordconv, prefix="fg")
    return keras.Model([y, z], [_head(x, 3, "tanh", "fg_mean", seed),
                                _head(x, 1, "sigmoid", "fg_gate", seed)],
                       name="foreground_decoder")


def build_background_decoder(image_size, z_size, width, seed=None, fc_width=None,
                             coordconv=False, y_size=None):
    """z_bg -> b in [-1, 1]; with y_size, (raw y, z_bg) -> b."""
    z = keras.Input((z_size,), name="z_bg")
    y = keras.Input((y_size,), name="y") if y_size else None
    x = cvae.decoder_features(y, z, image_size, width, seed, fc_width, coordconv,
                              prefix="bg")
    return keras.Model([y, z] if y_size else z, _head(x, 3, "tanh", "bg_mean", seed),
                       name="background_decoder")


def background_reads_y(background):
    return len(background.inputs) == 2


def decode_background(background, y, z_bg, **kwargs):
    return background([y, z_bg] if background_reads_y(background) else z_bg, **kwargs)


def build_layered_decoder(foreground, background):
    """The artifact's decoder: (raw y, [z_fg, z_bg]) -> (f + g * b, zeros)."""
    y_size = foreground.inputs[0].shape[-1]
    z_fg, z_bg = foreground.inputs[1].shape[-1], background.inputs[-1].shape[-1]
    y = keras.Input((y_size,), name="y")
    z = keras.Input((z_fg + z_bg,), name="z")
    f, g = foreground([y, Columns(0, z_fg, name="z_fg")(z)])
    b = decode_background(background, y, Columns(z_fg, z_fg + z_bg, name="z_bg")(z))
    mean = Compose(name="compose", dtype="float32")([f, g, b])
    return keras.Model([y, z], [mean, ZerosLike(name="logvar", dtype="float32")(mean)],
                       name="decoder")

