"""Trains a model, exports it and evaluates it.

    python -m relattr_tf.train --flagfile=configs/quickstart.flags
    python -m relattr_tf.train --flagfile=configs/smoke.flags --cpu_devices=2 --strategy=mirrored
    python -m relattr_tf.train --flagfile=configs/base.flags --data_dir=DIR --attribute=all

Flags are read here only (they are generated from relattr_tf.config's one definition);
everything below takes a Config. Rerunning a command on the same --model_dir resumes it from
its last finished epoch.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
import warnings

from absl import app, flags, logging

from relattr_tf import cli
from relattr_tf import config_flags

config_flags.define_flags()
flags.DEFINE_string("model_dir", "runs/default", "Where checkpoints, logs and the export go.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices (tests, CI).",
                     lower_bound=1, upper_bound=64)
FLAGS = flags.FLAGS


def prepare():
    """Quiet logs, logical CPU devices and determinism from the flags; returns the Config."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the per-epoch lines readable
    config = config_flags.from_flags()
    if config.train.deterministic:
        # oneDNN's results depend on its thread count, which TensorFlow may change between
        # steps; TensorFlow's own CPU kernels are the reproducible (slower) path. Read at
        # TensorFlow's import, which comes after this (tests/test_faults.py checks).
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    from relattr_tf.training import distribute
    distribute.configure_cpu_devices(FLAGS.cpu_devices)  # before TensorFlow is used
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # our datasets shuffle
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = prepare()
    from relattr_tf.training import run
    if getattr(config.family, "attribute", None) == "all":
        run.train_all_attributes(config, FLAGS.model_dir)
    else:
        run.train_and_evaluate(config, FLAGS.model_dir)


if __name__ == "__main__":
    cli.run(main, "relattr_tf.train")
