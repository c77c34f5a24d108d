"""Trains a generator (Attribute2Image: --model=cvae or the layered --model=layered_cvae),
evaluates it and records the evaluation in a result ledger, as relattr_tf.oracle_generator
records the oracle's.

    python -m relattr_tf.train_generator --flagfile=configs/layered_cvae_synth.flags
    python -m relattr_tf.report --study=generator_synth

Same flags as relattr_tf.train, plus --results_dir and --study; a run that finished in
model_dir is reused, a cell the ledger has is kept.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_training_flags(model="layered_cvae")
cli.define_ledger_flags()
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    cli.check_family("relattr_tf.train_generator", "generator")
    config = cli.prepare()
    from relattr_tf.experiments import generator_training
    ledger = cli.ledger()
    _, record = generator_training.train_and_record(
        config, FLAGS.model_dir, ledger, cli.command_line("relattr_tf.train_generator"))
    print(f"ledger: {ledger.path(record['cell'])}")


if __name__ == "__main__":
    cli.run(main, "relattr_tf.train_generator")
