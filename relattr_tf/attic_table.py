"""ATTIC's experiment: every baseline at equal label budget, the paper's table and the learning
curve (relattr_tf.attic_experiment).

    python -m relattr_tf.attic_table --flagfile=configs/attic_table.flags

Writes <model_dir>/results_attic.md and .csv, learning_curve.csv and .png, and TensorBoard
scalars; rerunning the same command reuses every finished run and continues the others.
Same settings as relattr_tf.attic (--real_pairs is the label budget n).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
import shlex
import sys

from absl import app, flags

from relattr_tf import cli
from relattr_tf import train  # defines the training flags

flags.FLAGS.set_default("model", "attic")
# The same names as relattr_tf.ablation's and relattr_tf.attic's, with the same meaning: defined
# once when both are imported (the config-file test parses every flagfile in one process).
if "attributes" not in flags.FLAGS:
    flags.DEFINE_list("attributes", ["brightness"], "Attributes, one column each.")
if "seeds" not in flags.FLAGS:
    flags.DEFINE_list("seeds", ["0"], "Seeds: every method runs once per seed.")
if "rounds" not in flags.FLAGS:
    flags.DEFINE_integer("rounds", 2, "Active-learning rounds; each labels n / (2 rounds) "
                         "pairs.", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from relattr_tf.config import ConfigError, family_of
    if family_of(FLAGS.model) != "attic":
        raise ConfigError(f"--model={FLAGS.model}: relattr_tf.attic_table runs --model=attic")
    config = train.prepare()
    if not config.family.real_pairs:
        raise ConfigError("--real_pairs: the experiment needs the label budget n (> 0)")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise ConfigError(f"--seeds={','.join(FLAGS.seeds)}: integers expected") from None
    from relattr_tf import attic_experiment
    command = "python -m relattr_tf.attic_table " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    attic_experiment.run_experiment(config, FLAGS.model_dir, FLAGS.attributes, seeds,
                                    FLAGS.rounds, command)


if __name__ == "__main__":
    cli.run(main, "relattr_tf.attic_table")
