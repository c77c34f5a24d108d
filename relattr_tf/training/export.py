"""Exporting a trained pair model so it loads without relattr_tf's code.

`<model_dir>/export/` is a SavedModel with endpoints
  pair(image_a, image_b) -> {"p"}     (also the serving_default signature)
  score(image) -> {"score"}           (RankNet only)
taking float32 RGB images in [0, 1] of the training size. `<model_dir>/model.keras` holds the
functional network for Keras users; load it with `keras.saving.load_model(path)` (safe mode).
"""
import os

import keras
import tensorflow as tf

EXPORT_DIR = "export"
KERAS_FILE = "model.keras"


def export_network(network, model_dir, image_size):
    spec = lambda name: tf.TensorSpec((None, image_size, image_size, 3), tf.float32, name=name)
    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.add_endpoint(
        name="pair",
        fn=lambda image_a, image_b: {"p": network((image_a, image_b), training=False)},
        input_signature=[spec("image_a"), spec("image_b")])
    scorer = next((l for l in network.layers if l.name == "scorer"), None)
    if scorer is not None:
        archive.add_endpoint(name="score",
                             fn=lambda image: {"score": scorer(image, training=False)},
                             input_signature=[spec("image")])
    export_dir = os.path.join(model_dir, EXPORT_DIR)
    archive.write_out(export_dir, verbose=False)
    network.save(os.path.join(model_dir, KERAS_FILE))
    return export_dir


def load_exported(model_dir):
    """The exported SavedModel (no relattr_tf code needed), with a helpful error if missing."""
    export_dir = os.path.join(model_dir, EXPORT_DIR)
    if not tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        raise FileNotFoundError(f"{export_dir}: no exported model (training writes it when it "
                                f"finishes; rerun training on this model_dir to finish it)")
    return tf.saved_model.load(export_dir)
