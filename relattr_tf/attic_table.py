"""ATTIC's experiment: every baseline at equal label budget, the paper's table and the learning
curve (relattr_tf.experiments.attic_experiment).

    python -m relattr_tf.attic_table --flagfile=configs/attic_table.flags

Writes one ledger record per method, attribute and seed into <results_dir>/<study>/ as each
cell finishes, then <model_dir>/results_attic.md and .csv, learning_curve.csv and .png, and
TensorBoard scalars; rerunning the same command skips the cells in the ledger and reuses every
finished run of the others. Same settings as relattr_tf.attic (--real_pairs is the label
budget n).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402
from relattr_tf.config import ConfigError  # noqa: E402

cli.define_training_flags(model="attic")
cli.define_experiment_flags(rounds=2)
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    cli.check_family("relattr_tf.attic_table", "attic")
    config = cli.prepare()
    if not config.family.real_pairs:
        raise ConfigError("--real_pairs: the experiment needs the label budget n (> 0)")
    from relattr_tf.experiments import attic_experiment
    attic_experiment.run_experiment(config, FLAGS.model_dir, FLAGS.attributes,
                                    [int(s) for s in FLAGS.seeds], FLAGS.rounds,
                                    cli.command_line("relattr_tf.attic_table"), cli.ledger())


if __name__ == "__main__":
    cli.run(main, "relattr_tf.attic_table")
