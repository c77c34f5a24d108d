"""A trained pair model as a run leaves it, saved and loaded here only.

Exported so it loads without relattr_tf's code:

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
import logging
import os

import keras
import tensorflow as tf

from relattr_tf import models
from relattr_tf.artifacts import rounds
from relattr_tf.artifacts.run_config import CONFIG_FILE, load_run_config
from relattr_tf.config import ConfigError, RankerConfig
from relattr_tf.models.boxes import box_of

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


def load_exported(model_dir):
    """The exported SavedModel (no relattr_tf code needed), with a helpful error if missing."""
    export_dir = os.path.join(model_dir, EXPORT_DIR)
    if not tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        raise FileNotFoundError(f"{export_dir}: no exported model (training writes it when it "
                                f"finishes; rerun training on this model_dir to finish it)")
    return tf.saved_model.load(export_dir)


def network_name(config):
    """The pair network's --model name (an ATTIC run's is its ranker's)."""
    return getattr(config.family, "ranker_model", config.model)


def parts_from_config(config):
    """The pair network of a config's settings, freshly initialised (seeded)."""
    net = config.family
    return models.build_model(
        network_name(config), image_size=config.data.image_size, width=net.width,
        seed=config.train.seed, reduction=net.reduction, cross_filters=net.cross_filters,
        cross_depth=net.cross_depth, head_units=net.head_units, head_pool=net.head_pool,
        box_scale_init=net.box_scale_init, stn_transform=net.stn_transform,
        trunk_init=net.trunk_init, head_init=net.head_init)


def _same_network(before, config, keys=("image_size", "width", "stn_transform")):
    return [k for k in keys if before.values().get(k) != config.values().get(k)]


def load_pair_weights(network, model_dir, name, config):
    """Every weight of `network` from a finished model_dir of the same pair network."""
    path = os.path.join(model_dir, KERAS_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"--warm_start={model_dir}: no finished model here ({path} missing)")
    before = load_run_config(model_dir)
    trained = network_name(before)
    changed = _same_network(before, config)
    if trained != name or changed:
        what = f"model {trained}" if trained != name else ", ".join(
            f"--{k}={before.values().get(k)}" for k in changed)
        raise ConfigError(f"--warm_start={model_dir}: it holds another network ({what}); "
                          f"this run's is {name}")
    network.set_weights(keras.saving.load_model(path, safe_mode=True).get_weights())
    logging.info("all weights from %s", path)


def load_localizer(parts, model_dir, config=None):
    """Starts a DeepSTN from another (stage-1) model_dir: its localisation layers and the trunk
    whose features they read (shared with the ranker here), so the boxes carry over; the score
    layer starts anew."""
    path = os.path.join(model_dir, KERAS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: --init_from needs a finished DeepSTN model_dir")
    if config is not None:
        before = load_run_config(model_dir)
        if not before.model.startswith("deepstn"):
            raise ConfigError(f"{model_dir}: --init_from needs a DeepSTN model, it holds "
                              f"{before.model}")
        changed = _same_network(before, config)
        if changed:
            raise ConfigError(f"{model_dir}: --init_from needs the same "
                              f"{', '.join('--' + k for k in changed)} as the stage-1 run")
    scorer = keras.saving.load_model(path, safe_mode=True).get_layer("scorer")
    parts.trunk.set_weights(scorer.get_layer("trunk").get_weights())
    parts.groups["localizer"][0].set_weights(scorer.get_layer("localizer").get_weights())
    logging.info("localisation layers and trunk from %s", path)


def pair_model_config(model_dir):
    """The config of a pair-model directory (a pair ranker, or an ATTIC run's ranker); a
    one-line error for another model or for an ATTIC loop's folder, which holds several."""
    round_dirs = rounds.round_dirs(model_dir)
    if round_dirs and not tf.io.gfile.exists(os.path.join(model_dir, CONFIG_FILE)):
        rankers = [os.path.join(r, d) for r in round_dirs
                   for d in (rounds.RANKER_DIR, rounds.ADVERSARIAL_DIR)
                   if tf.io.gfile.exists(os.path.join(r, d, KERAS_FILE))]
        example = f", e.g. --model_dir={rankers[-1]}" if rankers else " (none has finished)"
        raise ConfigError(f"{model_dir}: an ATTIC loop's folder holds one ranker per round; "
                          f"pass one{example}")
    config = load_run_config(model_dir)
    if not isinstance(config.family, RankerConfig):
        raise ConfigError(f"{model_dir}: holds a {config.model} model, not a pair model")
    return config


def load_trained_parts(model_dir):
    """(config, ModelParts) of a finished pair-model directory (a pair ranker, or an ATTIC run's
    ranker) with its trained weights: scorer, encoder, comparator and localizer included."""
    config = pair_model_config(model_dir)
    path = os.path.join(model_dir, KERAS_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{model_dir}: training has not finished ({path} missing)")
    parts = parts_from_config(config)
    parts.network.set_weights(keras.saving.load_model(path, safe_mode=True).get_weights())
    return config, parts
