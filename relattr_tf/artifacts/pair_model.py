"""Exporting a trained pair model so it loads without relattr_tf's code.

`<model_dir>/export/` is a SavedModel with endpoints
  pair(image_a, image_b) -> {"p"}               (also the serving_default signature)
  score(image) -> {"score"}                     (score models: RankNet)
  features(image) -> {"features"}, compare(features_a, features_b) -> {"p"}   (DACRL)
  transform(image) -> {"theta"}: the crop's affine map, flattened (6), in [-1, 1] coordinates,
  box(image) -> {"box"}: (s, tx, ty) of a box transform (DeepSTN)
taking float32 RGB images in [0, 1] of the training size. The last two let evaluation run the
trunk once per image. `<model_dir>/model.keras` holds the functional network for Keras users;
load it with `keras.saving.load_model(path)` (safe mode) after `import relattr_tf.models`.
"""
import os

import keras
import tensorflow as tf

EXPORT_DIR = "export"
KERAS_FILE = "model.keras"


def export_pair_model(parts, model_dir, image_size):
    spec = lambda name, shape: tf.TensorSpec((None,) + tuple(shape), tf.float32, name=name)
    image = (image_size, image_size, 3)
    network = parts.network
    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.add_endpoint(
        name="pair",
        fn=lambda image_a, image_b: {"p": network((image_a, image_b), training=False)},
        input_signature=[spec("image_a", image), spec("image_b", image)])
    if parts.scorer is not None:
        archive.add_endpoint(name="score",
                             fn=lambda image: {"score": parts.scorer(image, training=False)},
                             input_signature=[spec("image", image)])
    if parts.encoder is not None and parts.comparator is not None:
        features = parts.encoder.output.shape[1:]
        archive.add_endpoint(
            name="features", fn=lambda image: {"features": parts.encoder(image, training=False)},
            input_signature=[spec("image", image)])
        archive.add_endpoint(
            name="compare",
            fn=lambda features_a, features_b: {
                "p": parts.comparator((features_a, features_b), training=False)},
            input_signature=[spec("features_a", features), spec("features_b", features)])
    if parts.localizer is not None:
        theta = lambda image: parts.localizer(image, training=False)
        archive.add_endpoint(name="transform", fn=lambda image: {"theta": theta(image)},
                             input_signature=[spec("image", image)])
        archive.add_endpoint(name="box", fn=lambda image: {"box": box_of(theta(image))},
                             input_signature=[spec("image", image)])
    export_dir = os.path.join(model_dir, EXPORT_DIR)
    archive.write_out(export_dir, verbose=False)
    network.save(os.path.join(model_dir, KERAS_FILE))
    return export_dir


def box_of(theta):
    """(s, tx, ty) of a box transform [[s, 0, s tx], [0, s, s ty]] (flattened theta); for an
    affine one, the mean scale of its diagonal and its centre divided by it."""
    scale = (theta[:, 0] + theta[:, 4]) / 2
    return tf.stack([scale, theta[:, 2] / scale, theta[:, 5] / scale], axis=1)


def load_exported(model_dir):
    """The exported SavedModel (no relattr_tf code needed), with a helpful error if missing."""
    export_dir = os.path.join(model_dir, EXPORT_DIR)
    if not tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        raise FileNotFoundError(f"{export_dir}: no exported model (training writes it when it "
                                f"finishes; rerun training on this model_dir to finish it)")
    return tf.saved_model.load(export_dir)
