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

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_training_flags()
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    config = cli.prepare()
    from relattr_tf.training import run  # TensorFlow: after prepare() set its environment
    if getattr(config.family, "attribute", None) == "all":
        run.train_all_attributes(config, FLAGS.model_dir)
    else:
        run.train_and_evaluate(config, FLAGS.model_dir)


if __name__ == "__main__":
    cli.run(main, "relattr_tf.train")
