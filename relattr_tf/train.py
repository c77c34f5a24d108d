"""Trains a relative-attribute ranker, exports it and evaluates it.

    python -m relattr_tf.train --flagfile=configs/quickstart.flags
    python -m relattr_tf.train --flagfile=configs/smoke.flags --cpu_devices=2 --strategy=mirrored
    python -m relattr_tf.train --flagfile=configs/base.flags --data_dir=DIR --attribute=all

Flags are read here only; everything below takes a TrainConfig. Rerunning a command on the same
--model_dir resumes it from its last finished epoch.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
import sys
import warnings

from absl import app, flags, logging

from relattr_tf.config import TrainConfig

D = TrainConfig()
flags.DEFINE_string("data_dir", D.data_dir, "Data directory (metadata.json + pair shards).")
flags.DEFINE_string("attribute", D.attribute, "Attribute to train, or 'all' (one net each).")
flags.DEFINE_string("model_dir", "runs/default", "Where checkpoints, logs and the export go.")
flags.DEFINE_enum("model", D.model, ["dacrl", "dacrl_noatt", "ranknet"], "Pair model.")
flags.DEFINE_integer("image_size", D.image_size, "Input size (images are resized to it).")
flags.DEFINE_float("width", D.width, "VGG16 channel multiplier; 1 = the real VGG16.")
flags.DEFINE_integer("reduction", D.reduction, "Channel attention reduction ratio.")
flags.DEFINE_integer("cross_filters", D.cross_filters, "Filters of the cross-image conv.")
flags.DEFINE_integer("cross_depth", D.cross_depth, "Layers of the cross-image conv.")
flags.DEFINE_integer("head_units", D.head_units, "Units of the prediction FC layer.")
flags.DEFINE_enum("head_pool", D.head_pool, ["gap", "flatten"], "Pooling before the head.")
flags.DEFINE_string("backbone_weights", D.backbone_weights,
                    "Local path of Keras' VGG16 notop ImageNet .h5 file (needs --width=1).")
flags.DEFINE_enum("optimizer", D.optimizer, ["rmsprop", "adam", "adamw", "sgd"], "Optimizer.")
flags.DEFINE_float("trunk_lr", D.trunk_lr, "Learning rate of the VGG16 trunk.")
flags.DEFINE_float("head_lr", D.head_lr, "Learning rate of every other layer.")
flags.DEFINE_float("weight_decay", D.weight_decay, "Decoupled weight decay (biases excluded).")
flags.DEFINE_list("lr_drop_epochs", [str(e) for e in D.lr_drop_epochs],
                  "Divide learning rates by --lr_drop_factor after these many epochs.")
flags.DEFINE_float("lr_drop_factor", D.lr_drop_factor, "Learning-rate drop factor.")
flags.DEFINE_integer("epochs", D.epochs, "Epochs.")
flags.DEFINE_integer("steps_per_epoch", D.steps_per_epoch, "0: one pass over the pairs.")
flags.DEFINE_integer("batch_size", D.batch_size, "Global batch size in pairs.")
flags.DEFINE_string("train_split", D.train_split, "Split to train on.")
flags.DEFINE_list("eval_split", list(D.eval_splits), "Split(s) to evaluate at the end.")
flags.DEFINE_string("val_split", D.val_split, "Split monitored during training ('' = first "
                    "eval split; monitoring only, nothing is selected on it).")
flags.DEFINE_integer("val_steps", D.val_steps, "Validation batches per epoch (0 = all).")
flags.DEFINE_list("augment", list(D.augment), "Training augmentations: flip,translate,crop.")
flags.DEFINE_boolean("swap", D.swap, "Also train every pair swapped, with target 1 - t.")
flags.DEFINE_boolean("cache", D.cache, "Keep encoded training records in memory.")
flags.DEFINE_boolean("skip_corrupt", D.skip_corrupt, "Skip unreadable records (logged).")
flags.DEFINE_enum("strategy", D.strategy, ["default", "mirrored"], "Distribution strategy.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices (tests, CI).")
flags.DEFINE_enum("mixed_precision", D.mixed_precision,
                  ["float32", "mixed_float16", "mixed_bfloat16"], "Keras dtype policy.")
flags.DEFINE_boolean("jit_compile", D.jit_compile, "XLA-compile the train step.")
flags.DEFINE_integer("seed", D.seed, "Random seed.")
flags.DEFINE_boolean("deterministic", D.deterministic,
                     "TensorFlow op determinism (and its own CPU kernels: slower than oneDNN).")
flags.DEFINE_integer("tensorboard_pairs", D.tensorboard_pairs, "Pairs shown in TensorBoard.")
flags.DEFINE_enum("progress", D.progress, ["line", "bar"], "Per-epoch line or progress bar.")
flags.DEFINE_boolean("make_data", D.make_data,
                     "Build the embedded benchmark in --data_dir first if it has none.")
flags.DEFINE_string("make_data_args", D.make_data_args,
                    "Arguments for beam_jobs.make_synthetic when --make_data builds data.")
FLAGS = flags.FLAGS


def config_from_flags():
    return TrainConfig(
        data_dir=FLAGS.data_dir, attribute=FLAGS.attribute, model=FLAGS.model,
        image_size=FLAGS.image_size, width=FLAGS.width, reduction=FLAGS.reduction,
        cross_filters=FLAGS.cross_filters, cross_depth=FLAGS.cross_depth,
        head_units=FLAGS.head_units, head_pool=FLAGS.head_pool,
        backbone_weights=FLAGS.backbone_weights, optimizer=FLAGS.optimizer,
        trunk_lr=FLAGS.trunk_lr, head_lr=FLAGS.head_lr, weight_decay=FLAGS.weight_decay,
        lr_drop_epochs=tuple(int(e) for e in FLAGS.lr_drop_epochs),
        lr_drop_factor=FLAGS.lr_drop_factor, epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch, batch_size=FLAGS.batch_size,
        train_split=FLAGS.train_split, val_split=FLAGS.val_split, val_steps=FLAGS.val_steps,
        eval_splits=tuple(FLAGS.eval_split), augment=tuple(FLAGS.augment), swap=FLAGS.swap,
        cache=FLAGS.cache, skip_corrupt=FLAGS.skip_corrupt, strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile, seed=FLAGS.seed,
        deterministic=FLAGS.deterministic, tensorboard_pairs=FLAGS.tensorboard_pairs,
        progress=FLAGS.progress, make_data=FLAGS.make_data, make_data_args=FLAGS.make_data_args)


def prepare():
    """Quiet logs, logical CPU devices and determinism from the flags; returns the config."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the per-epoch lines readable
    if FLAGS.deterministic:
        # oneDNN's results depend on its thread count, which TensorFlow may change between
        # steps; TensorFlow's own CPU kernels are the reproducible (slower) path. Read at
        # TensorFlow's import, which comes after this (tests/test_faults.py checks).
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    from relattr_tf.training import distribute
    distribute.configure_cpu_devices(FLAGS.cpu_devices)  # before TensorFlow is used
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # our datasets shuffle
    config = config_from_flags()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = prepare()
    from relattr_tf.data.schema import DataError
    from relattr_tf.training import run
    from relattr_tf.training.callbacks import NonFiniteLossError
    try:
        if config.attribute == "all":
            run.train_all_attributes(config, FLAGS.model_dir)
        else:
            run.train_and_evaluate(config, FLAGS.model_dir)
    except (DataError, run.ConfigError, NonFiniteLossError, FileNotFoundError, ValueError) as e:
        logging.debug("failed", exc_info=True)
        sys.exit(f"relattr_tf.train: {e}")


if __name__ == "__main__":
    app.run(main)
