"""A task that is not a pair ranker, to prove the training core takes any model family: a tiny
convolutional autoencoder on an image table (single images, its own loss, one parameter group
per half), registered as family "autoencoder" with its own config section."""
import dataclasses
import json
import os

import keras
import tensorflow as tf

from relattr_tf import config as config_lib
from relattr_tf.config import setting
from relattr_tf.data import pipeline
from relattr_tf.training import task


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    image_table: str = setting("generator", "Image table it trains on.")
    validation_fraction: float = setting(0.25, "Held-out share of the table.", lower=0.0,
                                         upper=0.5)
    code_channels: int = setting(4, "Channels of the code.", lower=1, architecture=True)
    learning_rate: float = setting(1e-2, "Learning rate of both halves.", lower=0.0)


config_lib.register_family("autoencoder", AutoencoderConfig, ["tiny_autoencoder"])


@keras.saving.register_keras_serializable(package="relattr_tf_tests")
class Autoencoder(task.TaskModel):
    def __init__(self, size, channels, **kwargs):
        super().__init__(**kwargs)
        self.encoder = keras.Sequential([
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu")],
            name="encoder")
        self.decoder = keras.Sequential([
            keras.Input((size // 2, size // 2, channels)),
            keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same",
                                         activation="sigmoid", dtype="float32")],
            name="decoder")
        self.mse = keras.losses.MeanSquaredError()
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, images, training=False):
        return self.decoder(self.encoder(images, training=training), training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        images, _ = data
        with tf.GradientTape() as tape:
            loss = self.mse(images, self(images, training=True))
        self.apply_gradients_of(tape, loss)
        self.loss_tracker.update_state(loss * tf.distribute.get_strategy().num_replicas_in_sync)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        images, _ = data
        self.loss_tracker.update_state(self.mse(images, self(images)))
        return {"loss": self.loss_tracker.result()}


class AutoencoderTask(task.Task):
    def _input(self):
        return pipeline.InputConfig(batch_size=self.config.train.batch_size,
                                    image_size=self.config.data.image_size, augment=("flip",))

    def _dataset(self, part, training, start_batch=0):
        data = self.config.data
        return pipeline.make_image_dataset(
            data.data_dir, self.config.family.image_table, self._input(), part=part,
            validation_fraction=self.config.family.validation_fraction, training=training,
            seed=self.config.train.seed, start_batch=start_batch)

    def steps_per_epoch(self, meta):
        count = meta["images"][self.config.family.image_table]["count"]
        return max(1, count // self.config.train.batch_size)

    def datasets(self, meta, start_batch):
        return self._dataset("train", True, start_batch), self._dataset("validation", False)

    def build(self):
        size = self.config.data.image_size
        self.model = Autoencoder(size, self.config.family.code_channels)
        self.model(tf.zeros((1, size, size, 3)))
        return self.model

    def group_learning_rates(self):
        return {"encoder": self.config.family.learning_rate,
                "decoder": self.config.family.learning_rate}

    def group_variables(self, model):
        return {"encoder": model.encoder.trainable_variables,
                "decoder": model.decoder.trainable_variables}

    def export(self, model, model_dir):
        model.save_weights(os.path.join(model_dir, "autoencoder.weights.h5"))

    def evaluate(self, model_dir, **options):
        loss = self.model.evaluate(self._dataset("validation", False), verbose=0,
                                   return_dict=True)["loss"]
        result = {"reconstruction_mse": float(loss)}
        with open(os.path.join(model_dir, "eval_reconstruction.json"), "w") as f:
            json.dump(result, f)
        return {"reconstruction": result}


task.register_task("autoencoder", AutoencoderTask)


def config(data_dir, **train):
    return config_lib.Config(
        model="tiny_autoencoder",
        data=config_lib.DataConfig(data_dir=data_dir, image_size=32),
        train=config_lib.TrainConfig(**dict(dict(optimizer="adam", epochs=2, batch_size=4,
                                                  lr_drop_epochs=(), weight_decay=0.0,
                                                  steps_per_epoch=3, tensorboard_images=0),
                                             **train)),
        family=AutoencoderConfig())
