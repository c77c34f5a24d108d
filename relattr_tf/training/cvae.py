"""The generator's task: Attribute2Image (a conditional VAE) on an image table with strength
vectors, and the frozen decoder it leaves for ATTIC.

Loss: the negative ELBO per image, -log N(x; mean, exp(logvar)) summed over pixels (z drawn
from q; --likelihood: the decoder's variance, a fixed sigma, or SmoothL1) plus kl_weight *
KL(q(z | x, y) || N(0, I)) (kl_weight ramped up from 0 over --kl_warmup_steps), averaged over the global batch with
`tf.nn.compute_average_loss`, so a replica's loss is its share of the global mean
(tests/test_cvae.py checks 1 vs 2 replicas). Images are in [-1, 1] inside the model, so the
likelihood is a density on that scale (no dequantisation): compare figures with each other.

Export, `<model_dir>/generator/` (relattr_tf.artifacts.generator saves it and loads it back
frozen):
  saved_model/     SavedModel, signature decode(y, z) -> {"image"} (RGB in [0, 1]), loadable
                   with tf.saved_model.load and no relattr_tf
  decoder.keras    the decoder (raw y, z) -> (mean in [-1, 1], log-variance), safe-mode loadable
  generator.json   attribute names, strength statistics (mean, std, min, max of the training
                   set), z size, image size, value range
Evaluation writes `<model_dir>/eval_generator.json` (relattr_tf.evaluation.generator) and
`sweeps.png` (a row per attribute, its strength from low to high).
"""
import os
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.config import ConfigError
from relattr_tf.data import images as images_lib, pipeline, schema
from relattr_tf.evaluation import generator as generator_eval, report
from relattr_tf.models import cvae as cvae_lib
from relattr_tf.training import callbacks, generator_goals, task
from relattr_tf.training.vae_losses import gaussian_kl, reconstruction_nll

RESULT_FILE = "eval_generator.json"
SWEEP_FILE = "sweeps.png"  # one row per attribute, low to high


@keras.saving.register_keras_serializable(package="relattr_tf")
class ConditionalVAE(task.TaskModel):
    """Trains encoder q(z | x, y) and decoder p(x | y, z) on (image in [0, 1], y) batches."""

    def __init__(self, encoder, decoder, kl_weight=1.0, seed=None, sample_posterior=True,
                 likelihood="learned_gaussian", likelihood_sigma=0.05, kl_warmup_steps=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.kl_weight = float(kl_weight)
        self.likelihood, self.likelihood_sigma = likelihood, float(likelihood_sigma)
        self.kl_warmup_steps = int(kl_warmup_steps)
        # Training steps taken: a weight, so the warm-up resumes where a checkpoint left it.
        self.steps_taken = self.add_weight(name="steps_taken", shape=(), initializer="zeros",
                                           trainable=False, dtype="float32",
                                           aggregation="only_first_replica")
        self.sample_posterior = sample_posterior  # False: z = the mean of q (tests)
        self.noise = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")  # the objective (kl_weight)
        self.elbo_tracker = keras.metrics.Mean(name="neg_elbo")  # one-sample -ELBO
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.mse_tracker = keras.metrics.Mean(name="mse")

    @property
    def metrics(self):
        return [self.loss_tracker, self.elbo_tracker, self.nll_tracker, self.kl_tracker,
                self.mse_tracker]

    def _posterior_noise(self, shape):
        """N(0, I) noise, different on every replica: Keras' seed generator state is the same on
        all replicas, so its draws would repeat across them."""
        seed = ops.cast(self.noise.next(), "int32")
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        return tf.random.stateless_normal(shape, seed + tf.stack([0, replica]))

    def call(self, inputs, training=False, sample=None):
        """(image in [0, 1], y) -> (reconstruction mean, log-variance, q mean, q log-variance).
        sample: decode a draw from q (default: when training) or its mean."""
        image, y = inputs
        z_mean, z_logvar = self.encoder([image * 2.0 - 1.0, y], training=training)
        z_mean, z_logvar = ops.cast(z_mean, "float32"), ops.cast(z_logvar, "float32")
        z = z_mean
        if (training if sample is None else sample) and self.sample_posterior:
            z = z + ops.exp(0.5 * z_logvar) * self._posterior_noise(ops.shape(z_mean))
        mean, logvar = self.decoder([y, z], training=training)
        return mean, logvar, z_mean, z_logvar

    def _loss_terms(self, image, y, training):
        # Held out too, z is drawn from q: the -ELBO is an expectation over q.
        mean, logvar, z_mean, z_logvar = self((image, y), training=training, sample=True)
        target = ops.cast(image, "float32") * 2.0 - 1.0
        nll = reconstruction_nll(self.likelihood, target, mean, logvar, self.likelihood_sigma)
        kl = gaussian_kl(z_mean, z_logvar)
        mse = ops.mean(ops.reshape(ops.square((mean - target) / 2.0), (ops.shape(image)[0], -1)),
                       axis=-1)  # in [0, 1] units
        return nll, kl, mse

    def current_kl_weight(self):
        """kl_weight, ramped linearly from 0 over the first kl_warmup_steps steps."""
        if not self.kl_warmup_steps:
            return self.kl_weight
        return self.kl_weight * ops.minimum(1.0, self.steps_taken / self.kl_warmup_steps)

    def _update_metrics(self, nll, kl, mse):
        for tracker, value in ((self.loss_tracker, nll + self.current_kl_weight() * kl),
                               (self.elbo_tracker, nll + kl),
                               (self.nll_tracker, nll), (self.kl_tracker, kl),
                               (self.mse_tracker, mse)):
            tracker.update_state(value)  # per-image values: a mean over images
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        image, y = data
        with tf.GradientTape() as tape:
            nll, kl, mse = self._loss_terms(image, y, training=True)
            loss = tf.nn.compute_average_loss(nll + self.current_kl_weight() * kl)
        self.apply_gradients_of(tape, loss)
        self.steps_taken.assign_add(1.0)
        return self._update_metrics(nll, kl, mse)

    def test_step(self, data):
        image, y = data
        return self._update_metrics(*self._loss_terms(image, y, training=False))


class CvaeTask(task.ImageTableTask):
    """Attribute2Image on one image table (family "generator"). statistics: the strength
    statistics (default: measured on the table's training part)."""

    def __init__(self, config, statistics=None):
        super().__init__(config)
        self.statistics = statistics
        self.model = self.store = None

    def run_name(self):
        return f"cvae-z{self.config.family.z_size}-seed{self.config.train.seed}"

    def result_names(self):
        return ("generator",)

    # ------------------------------------------------------------------ data
    def check_data(self, meta):
        data = self.config.data
        schema.image_table(meta, data.data_dir, self.config.family.image_table)
        if not meta.get("strength_names"):
            raise schema.DataError(f"{schema.metadata_path(data.data_dir)}: no strength_names; "
                                   f"the CVAE needs images with attribute-strength vectors")

    def _input(self):
        data = self.config.data
        return pipeline.InputConfig(batch_size=self.config.train.batch_size,
                                    image_size=data.image_size, augment=tuple(data.augment),
                                    image_memory_mb=data.image_memory_mb,
                                    skip_corrupt=data.skip_corrupt)

    def _image_store(self, meta=None):
        """The table's images, loaded once for statistics, training and validation."""
        if self.store is None:
            data = self.config.data
            meta = meta or schema.read_metadata(data.data_dir)
            config = self._input()
            self.store = images_lib.ImageStore(data.data_dir, [self.config.family.image_table],
                                               config.image_size, config.image_memory_mb, meta,
                                               config.skip_corrupt,
                                               channels=self.image_channels(meta))
        return self.store

    def image_dataset(self, part, training, meta=None, start_batch=0):
        data, net = self.config.data, self.config.family
        return pipeline.make_image_dataset(
            data.data_dir, net.image_table, self._input(), part=part,
            validation_fraction=net.validation_fraction, training=training,
            seed=self.config.train.seed, start_batch=start_batch, meta=meta,
            store=self._image_store(meta))

    def strength_statistics(self, meta=None):
        """{names, mean, std, min, max} of the training part's strengths (NaN left out)."""
        if self.statistics is None:
            data, net = self.config.data, self.config.family
            meta = meta or schema.read_metadata(data.data_dir)
            store = self._image_store(meta)
            rows = ~pipeline.validation_rows(store.ids, net.validation_fraction)
            y = store.strengths[rows].astype(np.float64)
            names = list(meta["strength_names"])[:y.shape[1]]
            if not len(names):
                raise schema.DataError(f"{schema.metadata_path(data.data_dir)}: image table "
                                       f"{net.image_table!r} has no strength vectors")
            std = np.nanstd(y, axis=0)
            self.statistics = dict(
                names=names, mean=np.nanmean(y, axis=0).tolist(),
                std=np.where(std > 1e-6, std, 1.0).tolist(),
                min=np.nanmin(y, axis=0).tolist(), max=np.nanmax(y, axis=0).tolist(),
                unknown_fraction=np.mean(~np.isfinite(y), axis=0).tolist(), images=int(len(y)))
        return self.statistics

    def table(self):
        return self.config.family.image_table

    # ------------------------------------------------------------------ model
    def check_config(self, replicas):
        super().check_config(replicas)
        if self.config.family.background_y and self.config.model == "cvae":
            raise ConfigError("--background_y: the plain CVAE has no background decoder "
                              "(--model=layered_cvae has)")
        if self.config.data.image_size % 16:
            raise ConfigError(f"--image_size={self.config.data.image_size}: the CVAE needs a "
                              f"multiple of 16 (64 in ATTIC)")

    def build(self):
        net, size = self.config.family, self.config.data.image_size
        stats = self.strength_statistics()
        y_size, seed = len(stats["names"]), self.config.train.seed
        fc_width = net.fc_width or None
        encoder = cvae_lib.build_encoder(size, y_size, net.z_size, net.cvae_width, seed,
                                         fc_width=fc_width, coordconv=net.coordconv)
        decoder = cvae_lib.build_decoder(size, y_size, net.z_size, net.cvae_width, seed,
                                         fc_width=fc_width, coordconv=net.coordconv)
        for model in (encoder, decoder):
            cvae_lib.set_strength_statistics(model, np.asarray(stats["mean"], np.float32),
                                             np.asarray(stats["std"], np.float32))
        self.model = ConditionalVAE(encoder, decoder, kl_weight=net.kl_weight, seed=seed,
                                    likelihood=net.likelihood,
                                    likelihood_sigma=net.likelihood_sigma,
                                    kl_warmup_steps=net.kl_warmup_steps, name="cvae")
        self.model((tf.zeros((1, size, size, 3)), tf.zeros((1, y_size))))
        return self.model

    def group_learning_rates(self):
        lr = self.config.family.generator_lr
        return {"encoder": lr, "decoder": lr}

    def group_variables(self, model):
        return {"encoder": model.encoder.trainable_variables,
                "decoder": model.decoder.trainable_variables}

    def describe(self, model):
        return (f"cvae (encoder {model.encoder.count_params():,}, decoder "
                f"{model.decoder.count_params():,} parameters) on "
                f"{self.config.family.image_table}, y = {len(self.strength_statistics()['names'])} "
                f"strengths, z = {self.config.family.z_size}")

    def callbacks(self, model, log_dir, val_ds):
        out, count = [], self.config.train.tensorboard_images
        for images, y in val_ds.take(1 if count else 0):
            out.append(callbacks.GeneratorImages(log_dir, model, images[:count].numpy(),
                                                 y[:count].numpy(), self.strength_statistics(),
                                                 seed=self.config.train.seed))
        if self.config.family.goal_eval_every:
            # The run's directory (log_dir's parent) holds the curve beside its results.
            out.append(generator_goals.goal_curve_callback(self, model, log_dir))
        return out

    # ------------------------------------------------------------------ results
    def artifact_statistics(self, model):
        """The strength statistics as the model holds them (a resumed run keeps its first)."""
        mean, std = cvae_lib.strength_statistics_of(model.decoder)
        return dict(self.strength_statistics(), mean=mean.tolist(), std=std.tolist())

    def export(self, model, model_dir):
        generator_artifact.save_generator(
            model.decoder, os.path.join(model_dir, generator_artifact.GENERATOR_DIR),
            self.artifact_statistics(model), self.config.family.z_size,
            self.config.data.image_size)
        model.encoder.save(os.path.join(model_dir, "encoder.keras"))

    def evaluate(self, model_dir, batch_size=64, **options):
        data, net = self.config.data, self.config.family
        started = time.time()
        decoder, info = generator_artifact.load_generator(
            os.path.join(model_dir, generator_artifact.GENERATOR_DIR))
        meta = schema.read_metadata(data.data_dir)
        vae = self.heldout_model(model_dir, decoder)
        vae.compile(optimizers={}, group_variables={})
        heldout = vae.evaluate(self.image_dataset("validation", False, meta), verbose=0,
                               return_dict=True)
        real, reconstructions = self._reconstructions(vae, meta)
        result = generator_eval.evaluate_generator(
            decoder, info, meta, sweep_steps=net.sweep_steps, sweep_samples=net.sweep_samples,
            pairs=net.eval_pairs, seed=self.config.train.seed, batch_size=batch_size,
            real_images=real, real_strengths=self.validation_strengths(meta))
        result.update(generator_eval.blur_references(real))
        generator_eval.add_reconstruction_figures(result, meta, real, reconstructions)
        generator_eval.write_sweep_sheet(decoder, info, os.path.join(model_dir, SWEEP_FILE),
                                         seed=self.config.train.seed)
        result.update(heldout_negative_elbo=float(heldout["neg_elbo"]),
                      heldout_nll=float(heldout["nll"]), heldout_kl=float(heldout["kl"]),
                      heldout_reconstruction_mse=float(heldout["mse"]),
                      kl_weight=net.kl_weight, data_dir=data.data_dir, table=net.image_table)
        result["goal_curve"] = generator_goals.final_goal_curve(
            self.config, model_dir, result, time.time() - started)
        report.write_json(os.path.join(model_dir, RESULT_FILE), result)
        return {"generator": result}

    def heldout_model(self, model_dir, decoder):
        """The trained model again, from what export wrote, for the held-out figures."""
        net = self.config.family
        encoder = keras.saving.load_model(os.path.join(model_dir, "encoder.keras"),
                                          safe_mode=True)
        return ConditionalVAE(encoder, decoder, kl_weight=net.kl_weight,
                              likelihood=net.likelihood, likelihood_sigma=net.likelihood_sigma)

    def _reconstructions(self, vae, meta, count=512):
        """(validation images, their reconstructions from q's mean), both in [0, 1]."""
        real, out, seen = [], [], 0
        for images, y in self.image_dataset("validation", False, meta):
            out.append((np.asarray(vae((images, y), training=False, sample=False)[0],
                                   np.float32) + 1) / 2)
            real.append(np.asarray(images, np.float32)[..., :3])
            seen += len(out[-1])
            if seen >= count:
                break
        return np.concatenate(real)[:count], np.clip(np.concatenate(out)[:count], 0, 1)

    def validation_strengths(self, meta):
        """The validation part's strength vectors (N, strengths), NaN where unknown."""
        store = self._image_store(meta)
        held = pipeline.validation_rows(store.ids, self.config.family.validation_fraction)
        return store.strengths[held].astype(np.float64)

    def image_channels(self, meta=None):
        """3 (RGB); a generator that reads the subject masks asks for 4."""
        return 3

    def validation_examples(self, meta, count=512):
        """Up to `count` validation (images (N, S, S, 3) in [0, 1], their strengths (N, K)),
        from the same batches, so a skipped unreadable image takes its strengths with it."""
        images, strengths, seen = [], [], 0
        for batch, y in self.image_dataset("validation", False, meta):
            images.append(np.asarray(batch, np.float32)[..., :3])
            strengths.append(np.asarray(y, np.float64))
            seen += len(images[-1])
            if seen >= count:
                break
        return np.concatenate(images)[:count], np.concatenate(strengths)[:count]

    def summary_line(self, name, result):
        return generator_eval.summary_line(result)
