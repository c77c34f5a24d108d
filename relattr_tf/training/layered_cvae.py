"""The layered Attribute2Image's task (--model=layered_cvae, family "generator"): the reference's
disCVAE on an image table with strength vectors, and the same frozen-decoder artifact the plain
CVAE leaves (models.layered_cvae).

Loss per image, as the reference's train_lfw_disCVAE.lua, with --likelihood's reconstruction
term R (SmoothL1 summed over pixels is the reference's; a fixed-sigma Gaussian is offered):

    R(x_hat, x) + R(f, x * m) + mask_weight * BCE(g, 1 - m) + w * (KL(fg) + KL(bg))

with m the subject mask, when the table stores one (make_synthetic --subject_masks: the PNG's
alpha); without masks the two mask terms are left out and the gate is learned unsupervised, as
the paper allows. w is --kl_weight, ramped up over --kl_warmup_steps. The sum is averaged over
the global batch (`tf.nn.compute_average_loss`): tests/test_cvae.py checks 1 vs 2 replicas.
"""
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.config import ConfigError
from relattr_tf.data import schema
from relattr_tf.models import cvae as cvae_lib, layered_cvae as layered_lib
from relattr_tf.training import cvae, vae_losses

ENCODER_FILES = ("foreground_encoder.keras", "background_encoder.keras")


class LayeredVAE(cvae.ConditionalVAE):
    """Trains the four parts on (image in [0, 1] with the subject mask as a 4th channel when
    masked, y) batches; `decoder` is the composed one the artifact saves."""

    def __init__(self, fg_encoder, bg_encoder, fg_decoder, bg_decoder, masked, mask_weight=0.3,
                 **kwargs):
        super().__init__(encoder=None, decoder=layered_lib.build_layered_decoder(
            fg_decoder, bg_decoder), **kwargs)
        self.fg_encoder, self.bg_encoder = fg_encoder, bg_encoder
        self.fg_decoder, self.bg_decoder = fg_decoder, bg_decoder
        self.masked, self.mask_weight = bool(masked), float(mask_weight)
        self.mask_tracker = keras.metrics.Mean(name="mask_bce")

    @property
    def metrics(self):
        return super().metrics + [self.mask_tracker]

    def _draw(self, mean, logvar, sample):
        mean, logvar = ops.cast(mean, "float32"), ops.cast(logvar, "float32")
        if sample and self.sample_posterior:
            return mean + ops.exp(0.5 * logvar) * self._posterior_noise(ops.shape(mean))
        return mean

    def parts(self, inputs, training=False, sample=None):
        """{x, m, f, g, b, x_hat, q means and log-variances} of a batch."""
        image, y = inputs
        y = ops.cast(y, "float32")
        sample = training if sample is None else sample
        x = ops.cast(image[..., :3], "float32") * 2.0 - 1.0
        m = ops.cast(image[..., 3:4], "float32") if self.masked else None
        fg_mean, fg_logvar = self.fg_encoder([x * m if self.masked else x, y],
                                             training=training)
        z_fg = self._draw(fg_mean, fg_logvar, sample)
        bg_mean, bg_logvar = self.bg_encoder(
            [x, ops.concatenate([y, z_fg], axis=-1)], training=training)
        z_bg = self._draw(bg_mean, bg_logvar, sample)
        f, g = self.fg_decoder([y, z_fg], training=training)
        b = layered_lib.decode_background(self.bg_decoder, y, z_bg, training=training)
        f, g, b = (ops.cast(t, "float32") for t in (f, g, b))
        # Unclipped here: a clip would cut the gradient to f and b wherever f + g * b leaves
        # [-1, 1]; the artifact's decoder clips (layered_cvae.Compose).
        return dict(x=x, m=m, f=f, g=g, b=b, x_hat=f + g * b,
                    fg_mean=fg_mean, fg_logvar=fg_logvar, bg_mean=bg_mean, bg_logvar=bg_logvar)

    def call(self, inputs, training=False, sample=None):
        p = self.parts(inputs, training, sample)
        x_hat = ops.clip(p["x_hat"], -1.0, 1.0)
        return x_hat, ops.zeros_like(x_hat), p["fg_mean"], p["fg_logvar"]

    def _loss_terms(self, image, y, training):
        p = self.parts((image, y), training=training, sample=True)
        term = lambda target, mean: vae_losses.reconstruction_nll(  # noqa: E731
            self.likelihood, target, mean, None, self.likelihood_sigma)
        nll = term(p["x"], p["x_hat"])
        kl = (vae_losses.gaussian_kl(ops.cast(p["fg_mean"], "float32"),
                               ops.cast(p["fg_logvar"], "float32")) +
              vae_losses.gaussian_kl(ops.cast(p["bg_mean"], "float32"),
                               ops.cast(p["bg_logvar"], "float32")))
        mask = ops.zeros_like(nll)
        if self.masked:
            nll = nll + term(p["x"] * p["m"], p["f"])
            g = ops.clip(p["g"], 1e-6, 1 - 1e-6)
            background = 1.0 - p["m"]
            bce = -(background * ops.log(g) + (1 - background) * ops.log(1 - g))
            mask = ops.sum(ops.reshape(bce, (ops.shape(g)[0], -1)), axis=-1)
        mse = ops.mean(ops.reshape(ops.square((ops.clip(p["x_hat"], -1.0, 1.0) - p["x"]) / 2.0),
                                   (ops.shape(image)[0], -1)), axis=-1)
        image_term = term(p["x"], p["x_hat"])
        return nll + self.mask_weight * mask, kl, mse, mask, image_term

    def _update_metrics(self, objective, kl, mse, mask, image_term):
        """loss: the objective; neg_elbo and nll: the picture's term R(x_hat, x) (+ KL), so
        they compare with the plain CVAE's (a density only for a Gaussian --likelihood)."""
        for tracker, value in ((self.loss_tracker, objective + self.current_kl_weight() * kl),
                               (self.elbo_tracker, image_term + kl),
                               (self.nll_tracker, image_term), (self.kl_tracker, kl),
                               (self.mse_tracker, mse), (self.mask_tracker, mask)):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        image, y = data
        with tf.GradientTape() as tape:
            objective, kl, mse, mask, image_term = self._loss_terms(image, y, training=True)
            loss = tf.nn.compute_average_loss(objective + self.current_kl_weight() * kl)
        self.apply_gradients_of(tape, loss)
        self.steps_taken.assign_add(1.0)
        return self._update_metrics(objective, kl, mse, mask, image_term)

    def test_step(self, data):
        image, y = data
        return self._update_metrics(*self._loss_terms(image, y, training=False))


class LayeredCvaeTask(cvae.CvaeTask):
    """The layered Attribute2Image on one image table; masks from the table when it has them
    (masked: True or False to say so without a data directory, as a test does)."""

    def __init__(self, config, statistics=None, masked=None):
        super().__init__(config, statistics)
        self._masked = masked

    def run_name(self):
        net = self.config.family
        return f"layered-cvae-z{net.z_size}-{net.z_bg_size}-seed{self.config.train.seed}"

    def masked(self, meta=None):
        if self._masked is not None:
            return self._masked
        data = self.config.data
        meta = meta or schema.read_metadata(data.data_dir)
        return schema.image_table(meta, data.data_dir,
                                  self.config.family.image_table).get("mask") == "alpha"

    def image_channels(self, meta=None):
        return 4 if self.masked(meta) else 3

    def check_config(self, replicas):
        super().check_config(replicas)
        if self.config.family.likelihood == "learned_gaussian":
            raise ConfigError("--likelihood=learned_gaussian: the layered generator has no "
                              "variance head; use smooth_l1 (the reference's) or fixed_gaussian")

    def build(self):
        net, size = self.config.family, self.config.data.image_size
        stats = self.strength_statistics()
        y_size, seed = len(stats["names"]), self.config.train.seed
        shape = dict(width=net.cvae_width, seed=seed, fc_width=net.fc_width or None,
                     coordconv=net.coordconv)
        fg_encoder = layered_lib.build_foreground_encoder(size, y_size, net.z_size, **shape)
        bg_encoder = layered_lib.build_background_encoder(size, y_size, net.z_size,
                                                          net.z_bg_size, **shape)
        fg_decoder = layered_lib.build_foreground_decoder(size, y_size, net.z_size, **shape)
        bg_decoder = layered_lib.build_background_decoder(
            size, net.z_bg_size, **shape, y_size=y_size if net.background_y else None)
        mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
        for model in (fg_encoder, fg_decoder) + ((bg_decoder,) if net.background_y else ()):
            cvae_lib.set_strength_statistics(model, mean, std)
        # z_fg joins y at the background encoder's input: it is N(0, I) already.
        cvae_lib.set_strength_statistics(
            bg_encoder, np.concatenate([mean, np.zeros(net.z_size, np.float32)]),
            np.concatenate([std, np.ones(net.z_size, np.float32)]))
        self.model = LayeredVAE(fg_encoder, bg_encoder, fg_decoder, bg_decoder,
                                masked=self.masked(), mask_weight=net.mask_weight,
                                kl_weight=net.kl_weight, seed=seed, likelihood=net.likelihood,
                                likelihood_sigma=net.likelihood_sigma,
                                kl_warmup_steps=net.kl_warmup_steps, name="layered_cvae")
        channels = self.image_channels()
        self.model((tf.zeros((1, size, size, channels)), tf.zeros((1, y_size))))
        return self.model

    def group_variables(self, model):
        return {"encoder": model.fg_encoder.trainable_variables +
                model.bg_encoder.trainable_variables,
                "decoder": model.fg_decoder.trainable_variables +
                model.bg_decoder.trainable_variables}

    def describe(self, model):
        parts = ", ".join(f"{m.name} {m.count_params():,}" for m in (
            model.fg_encoder, model.bg_encoder, model.fg_decoder, model.bg_decoder))
        net = self.config.family
        return (f"layered_cvae ({parts} parameters) on {net.image_table}, "
                f"{'subject masks' if model.masked else 'no masks: the gate unsupervised'}, "
                f"z_fg = {net.z_size}, z_bg = {net.z_bg_size}"
                f"{', the background reads y' if net.background_y else ''}")

    def artifact_statistics(self, model):
        mean, std = cvae_lib.strength_statistics_of(model.fg_decoder)
        return dict(self.strength_statistics(), mean=mean.tolist(), std=std.tolist())

    def export(self, model, model_dir):
        net = self.config.family
        generator_artifact.save_generator(
            model.decoder, os.path.join(model_dir, generator_artifact.GENERATOR_DIR),
            self.artifact_statistics(model),
            net.z_size + net.z_bg_size, self.config.data.image_size,
            extra=dict(model="layered_cvae", z_fg_size=net.z_size, z_bg_size=net.z_bg_size,
                       masked=bool(model.masked),
                       background_y=layered_lib.background_reads_y(model.bg_decoder)))
        for part, name in zip((model.fg_encoder, model.bg_encoder), ENCODER_FILES):
            part.save(os.path.join(model_dir, name))

    def heldout_model(self, model_dir, decoder):
        net = self.config.family
        fg_encoder, bg_encoder = (keras.saving.load_model(os.path.join(model_dir, name),
                                                          safe_mode=True)
                                  for name in ENCODER_FILES)
        return LayeredVAE(fg_encoder, bg_encoder, decoder.get_layer("foreground_decoder"),
                          decoder.get_layer("background_decoder"), masked=self.masked(),
                          mask_weight=net.mask_weight, kl_weight=net.kl_weight,
                          likelihood=net.likelihood, likelihood_sigma=net.likelihood_sigma)
