"""Training callbacks: checkpoints, non-finite loss guard, learning rates, pair images, HParams."""
import json
import math
import time

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from relattr_tf.models import boxes


class NonFiniteLossError(RuntimeError):
    """Raised when the loss becomes NaN or inf; the last epoch checkpoint is left untouched."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first non-finite loss by raising, before the epoch can end (and be
    checkpointed), so the last good checkpoint survives for a rerun with another setting."""

    def __init__(self, checkpoint_dir):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if name.endswith("loss") and not math.isfinite(float(value)):
                raise NonFiniteLossError(
                    f"{name} became {float(value)} in epoch {self.epoch + 1}, step {batch + 1}; "
                    f"training stopped and the last good checkpoint in {self.checkpoint_dir} is "
                    f"kept (lower the learning rate, or check the data, then rerun to resume "
                    f"from it)")


class LogLearningRates(keras.callbacks.Callback):
    """Adds the epoch's learning rates to its logs (TensorBoard then plots them)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.rates = {name: float(keras.ops.convert_to_numpy(value))
                      for name, value in self.model.learning_rates().items()}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.rates)


def pair_strip(image_a, image_b, p):
    """Side-by-side pair with a bar under it: green share = p (a shows more), red = 1 - p."""
    size = image_a.shape[0]
    bar = np.zeros((max(4, size // 8), 2 * size, 3), np.float32)
    split = int(round(float(p) * 2 * size))
    bar[:, :split, 1] = 1.0
    bar[:, split:, 0] = 1.0
    return np.concatenate([np.concatenate([image_a, image_b], axis=1), bar], axis=0)


class PairImages(keras.callbacks.Callback):
    """Writes a few validation pairs with their p, as images (with a p bar) and a text table."""

    def __init__(self, log_dir, network, images_a, images_b, targets):
        super().__init__()
        self.network = network
        self.images_a, self.images_b, self.targets = images_a, images_b, targets
        self.writer = tf.summary.create_file_writer(f"{log_dir}/pairs")

    def on_epoch_end(self, epoch, logs=None):
        p = np.asarray(self.network((self.images_a, self.images_b), training=False))
        strips = np.stack([pair_strip(a, b, q) for a, b, q in
                           zip(self.images_a, self.images_b, p.ravel())])
        rows = ["| pair | p (a shows more) | target |", "|---|---|---|"]
        rows += [f"| {i} | {q:.3f} | {t:g} |" for i, (q, t) in
                 enumerate(zip(p.ravel(), self.targets))]
        # record_if(True): Keras' TensorBoard callback makes recording conditional on its
        # update_freq, which would drop these epoch-end summaries.
        with self.writer.as_default(step=epoch + 1), tf.summary.record_if(True):
            tf.summary.image("pairs", strips, max_outputs=len(strips),
                             description="image a | image b; bar: green share = p")
            tf.summary.text("pairs_p", "\n".join(rows))
        self.writer.flush()


class GeneratedPairImages(keras.callbacks.Callback):
    """ATTIC each epoch: the first slots' generated pairs with the ranker's p under each (bar:
    green share = p) and the label their y implies, as images and a text table."""

    def __init__(self, log_dir, attic, count):
        super().__init__()
        self.attic, self.count = attic, count
        self.writer = tf.summary.create_file_writer(f"{log_dir}/generated_pairs")

    def on_epoch_end(self, epoch, logs=None):
        q = self.attic.slots[:self.count]
        (image_a, image_b), target, (y_a, y_b) = self.attic.generate(q, training=False)
        p = np.asarray(self.attic.network((image_a, image_b), training=False)).ravel()
        image_a, image_b = np.clip(image_a, 0, 1), np.clip(image_b, 0, 1)
        strips = np.stack([pair_strip(a, b, q) for a, b, q in zip(image_a, image_b, p)])
        k = self.attic.attribute_index
        rows = ["| slot | p (a shows more) | y^A | y^B | label from y |", "|---|---|---|---|---|"]
        rows += [f"| {i} | {q:.3f} | {a:.4g} | {b:.4g} | {t:g} |" for i, (q, a, b, t) in
                 enumerate(zip(p, np.asarray(y_a)[:, k], np.asarray(y_b)[:, k],
                               np.asarray(target).ravel()))]
        with self.writer.as_default(step=epoch + 1), tf.summary.record_if(True):
            tf.summary.image("generated_pairs", strips, max_outputs=len(strips),
                             description="generated a | b; bar: green share = the ranker's p")
            tf.summary.text("generated_pairs_p", "\n".join(rows))
        self.writer.flush()


class GeneratorImages(keras.callbacks.Callback):
    """The CVAE each epoch: reconstructions of validation images (original | reconstruction),
    samples from the prior (the validation images' y, fresh z), and attribute sweeps (one
    attribute from low to high, z and the other attributes fixed)."""

    SWEEP_STEPS = 7

    def __init__(self, log_dir, vae, images, y, statistics, seed=0):
        super().__init__()
        self.vae, self.images, self.y = vae, images, y
        self.names = list(statistics["names"])
        mean, std = np.asarray(statistics["mean"]), np.asarray(statistics["std"])
        self.mean = mean
        self.low = np.maximum(np.asarray(statistics["min"]), mean - 2 * std)
        self.high = np.minimum(np.asarray(statistics["max"]), mean + 2 * std)
        z_size = vae.decoder.inputs[1].shape[-1]
        self.z = np.random.default_rng(seed).normal(size=(len(images), z_size)).astype("float32")
        self.writer = tf.summary.create_file_writer(f"{log_dir}/generator")

    def _decode(self, y, z):
        mean, _ = self.vae.decoder([np.asarray(y, np.float32), z], training=False)
        return np.clip((np.asarray(mean) + 1) / 2, 0, 1)

    def sweeps(self, limit=8):
        """{attribute: one strip of SWEEP_STEPS images, low to high} for the first `limit`."""
        out = {}
        steps = np.linspace(0, 1, self.SWEEP_STEPS)
        for k, name in enumerate(self.names[:limit]):
            known = np.where(np.isnan(self.y[:1]), self.mean, self.y[:1])  # NaN: the mean
            y = np.repeat(known, self.SWEEP_STEPS, axis=0)
            y[:, k] = self.low[k] + steps * (self.high[k] - self.low[k])
            images = self._decode(y, np.repeat(self.z[:1], self.SWEEP_STEPS, axis=0))
            out[name] = np.concatenate(list(images), axis=1)
        return out

    def on_epoch_end(self, epoch, logs=None):
        mean = self.vae((self.images, self.y), training=False)[0]
        recon = np.clip((np.asarray(mean) + 1) / 2, 0, 1)
        shown = self.images[..., :3]  # a fourth channel is the subject mask
        with self.writer.as_default(step=epoch + 1), tf.summary.record_if(True):
            tf.summary.image("reconstructions", np.concatenate([shown, recon], axis=2),
                             max_outputs=len(recon), description="original | reconstruction")
            tf.summary.image("prior_samples", self._decode(self.y, self.z),
                             max_outputs=len(self.images),
                             description="a validation image's y, z drawn from N(0, I)")
            for name, strip in self.sweeps().items():
                tf.summary.image(f"sweep/{name}", strip[None], description=(
                    f"{name} from {self.low[self.names.index(name)]:.3g} to "
                    f"{self.high[self.names.index(name)]:.3g}; z and the rest fixed"))
        self.writer.flush()


class BoxImages(keras.callbacks.Callback):
    """Draws the predicted boxes on a few validation images every epoch (DeepSTN)."""

    def __init__(self, log_dir, localizer, images):
        super().__init__()
        self.localizer, self.images = localizer, images
        self.writer = tf.summary.create_file_writer(f"{log_dir}/boxes")

    def on_epoch_end(self, epoch, logs=None):
        corners = boxes.box_corners(self.localizer(self.images, training=False))
        drawn = tf.image.draw_bounding_boxes(self.images, corners[:, None, :],
                                             np.array([[1.0, 0.0, 0.0]], np.float32))
        with self.writer.as_default(step=epoch + 1), tf.summary.record_if(True):
            tf.summary.image("boxes", drawn, max_outputs=len(drawn),
                             description="predicted box (red) of the validation images")
        self.writer.flush()


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, keeping every epoch's summaries.

    Keras writes the epoch summaries inside the `record_if` of its batch frequency, so they
    were kept only when an epoch's last step was a multiple of `update_freq`
    (tensorflow/tensorboard#4975): the epoch losses, validation curves and learning rates of a
    run with 83 steps per epoch and update_freq=8 were all lost.
    """

    def on_epoch_end(self, epoch, logs=None):
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)


class WriteHParams(keras.callbacks.Callback):
    """Records the run's hyper-parameters for TensorBoard's HParams dashboard."""

    def __init__(self, log_dir, hparams, run_name):
        super().__init__()
        self.log_dir, self.hparams, self.run_name = log_dir, hparams, run_name

    def on_train_begin(self, logs=None):
        with tf.summary.create_file_writer(self.log_dir).as_default(), \
                tf.summary.record_if(True):
            hparams_api.hparams(self.hparams, trial_id=self.run_name)


class EpochLine(keras.callbacks.Callback):
    """One concise line per epoch: losses, accuracies, learning rates and time."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        parts = [f"{k}={v:.4g}" for k, v in sorted((logs or {}).items())]
        print(f"epoch {epoch + 1}/{self.epochs} ({time.time() - self.started:.0f}s): "
              + " ".join(parts), flush=True)


CHECKPOINT_STATE = "checkpoint.json"


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves model and optimizer state at every epoch end, crash-safe.

    Weights go to a new file per epoch; only then does `checkpoint.json` (replaced atomically)
    point at it, and older files are removed. A kill -9 at any moment leaves the previous
    complete checkpoint in force. `restore_checkpoint` reads it back.
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        tf.io.gfile.makedirs(self.directory)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(f"{self.directory}/{name}", overwrite=True)
        state = f"{self.directory}/{CHECKPOINT_STATE}"
        with tf.io.gfile.GFile(state + ".tmp", "w") as f:
            # stopped: a callback ended training here on purpose (GoalCurve: goals met)
            f.write(json.dumps({"epoch": epoch + 1, "weights": name,
                                "stopped": bool(self.model.stop_training)}))
        tf.io.gfile.rename(state + ".tmp", state, overwrite=True)
        for old in tf.io.gfile.glob(f"{self.directory}/epoch-*.weights.h5"):
            if not old.endswith(name):
                tf.io.gfile.remove(old)


def _checkpoint_state(directory):
    state = f"{directory}/{CHECKPOINT_STATE}"
    if not tf.io.gfile.exists(state):
        return None
    with tf.io.gfile.GFile(state) as f:
        return json.load(f)


def checkpoint_epoch(directory):
    """The epoch of the latest complete checkpoint (0 if none)."""
    saved = _checkpoint_state(directory)
    return int(saved["epoch"]) if saved else 0


def checkpoint_stopped(directory):
    """Whether the latest checkpoint is where a callback stopped training on purpose."""
    saved = _checkpoint_state(directory)
    return bool(saved and saved.get("stopped"))


def restore_checkpoint(model, directory):
    """Loads the latest complete checkpoint into a built model; returns its epoch (0 if none)."""
    saved = _checkpoint_state(directory)
    if not saved:
        return 0
    model.load_weights(f"{directory}/{saved['weights']}")
    return int(saved["epoch"])
