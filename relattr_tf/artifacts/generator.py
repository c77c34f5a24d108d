"""The generator a CVAE run leaves for ATTIC and the evaluation, saved and loaded here only.

`<model_dir>/generator/`:
  saved_model/     SavedModel, signature decode(y, z) -> {"image"} (RGB in [0, 1]), loadable
                   with tf.saved_model.load and no relattr_tf
  decoder.keras    the decoder (raw y, z) -> (mean in [-1, 1], log-variance), safe-mode loadable
  generator.json   kind ("learned", or "oracle": the benchmark's renderer, not the paper's
                   generator), attribute names, strength statistics (mean, std, min, max of
                   the training set), z size, image size, value range
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf

import relattr_tf.models  # noqa: F401  registers the decoder's layers for safe loading

GENERATOR_DIR = "generator"
INFO_FILE = "generator.json"
DECODER_FILE = "decoder.keras"
SAVED_MODEL_DIR = "saved_model"


def save_generator(decoder, directory, statistics, z_size, image_size, kind="learned",
                   extra=None):
    """Writes the frozen-decoder artifact (module docstring) into `directory`. kind: "learned"
    (a trained decoder) or "oracle" (models.oracle_renderer, the benchmark's renderer: not
    the paper's generator); extra: more entries for generator.json."""
    tf.io.gfile.makedirs(directory)
    decoder.save(os.path.join(directory, DECODER_FILE))
    y_size = len(statistics["names"])
    archive = keras.export.ExportArchive()
    archive.track(decoder)

    def decode(y, z):
        mean, _ = decoder([y, z], training=False)
        return {"image": (tf.cast(mean, tf.float32) + 1.0) / 2.0}

    archive.add_endpoint(name="decode", fn=decode, input_signature=[
        tf.TensorSpec((None, y_size), tf.float32, name="y"),
        tf.TensorSpec((None, z_size), tf.float32, name="z")])
    archive.write_out(os.path.join(directory, SAVED_MODEL_DIR), verbose=False)
    info = generator_info(statistics, z_size, image_size, kind, extra)
    with tf.io.gfile.GFile(os.path.join(directory, INFO_FILE), "w") as f:
        f.write(json.dumps(info, indent=2))


def generator_info(statistics, z_size, image_size, kind="learned", extra=None):
    """generator.json's entries: what load_generator returns beside the decoder."""
    return dict(kind=kind, attributes=list(statistics["names"]),
                strength_mean=list(statistics["mean"]), strength_std=list(statistics["std"]),
                strength_min=list(statistics["min"]), strength_max=list(statistics["max"]),
                unknown_fraction=list(statistics.get("unknown_fraction", [])),
                training_images=statistics.get("images"), z_size=int(z_size),
                image_size=int(image_size), value_range=[0.0, 1.0],
                decode="decode(y, z) -> {'image'}: y raw strengths (float32, len(attributes)), "
                       "z ~ N(0, I) (z_size); image RGB in value_range", **(extra or {}))


def load_generator(directory):
    """(frozen decoder keras.Model (raw y, z) -> (mean in [-1, 1], log-variance), info dict)."""
    info_path = os.path.join(directory, INFO_FILE)
    if not tf.io.gfile.exists(info_path):
        raise FileNotFoundError(f"{info_path}: no generator here (train one with python -m "
                                f"relattr_tf.train --flagfile=configs/cvae_synth.flags)")
    with tf.io.gfile.GFile(info_path) as f:
        info = json.load(f)
    decoder = keras.saving.load_model(os.path.join(directory, DECODER_FILE), safe_mode=True)
    decoder.trainable = False
    return decoder, info


def decode_images(decoder, y, z, batch_size=256):
    """uint8-ready float images in [0, 1] (N, S, S, 3) for raw strengths y and latents z."""
    out = []
    for start in range(0, len(y), batch_size):
        mean, _ = decoder([tf.constant(y[start:start + batch_size], tf.float32),
                           tf.constant(z[start:start + batch_size], tf.float32)],
                          training=False)
        out.append((np.asarray(mean, np.float32) + 1.0) / 2.0)
    return np.clip(np.concatenate(out), 0.0, 1.0)
