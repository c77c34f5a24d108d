"""Turns a study's result ledger into its table and plot for the docs.

    python -m relattr_tf.report --study=ablation_pretrained
    python -m relattr_tf.report --study=NAME --results_dir=results --out=docs/results

Reads every cell of <results_dir>/<study>/ (one JSON each, written by ablation, attic_table or
train_splits as the cells finished, on whatever machines ran them) and writes
<out>/<study>.md (where the figures came from, then the table), .csv and, for the ablation and
ATTIC's experiment, .png. Nothing is trained; the same ledger always gives the same table.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_ledger_flags()
flags.DEFINE_string("out", "docs/results", "Folder of the generated <study>.md, .csv, .png.")
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    if not FLAGS.study:
        raise ValueError("--study: name the study whose ledger (<results_dir>/<study>/) to "
                         "report")
    import tensorflow as tf

    from relattr_tf.evaluation import ledger, studies
    records = ledger.Ledger(FLAGS.results_dir, FLAGS.study).records()
    if not records:
        raise FileNotFoundError(f"{os.path.join(FLAGS.results_dir, FLAGS.study)}: the ledger "
                                f"has no finished cell yet")
    tf.io.gfile.makedirs(FLAGS.out)
    table = studies.write_study(records, FLAGS.study, FLAGS.results_dir,
                                os.path.join(FLAGS.out, FLAGS.study))
    print(table)
    print(f"wrote {os.path.join(FLAGS.out, FLAGS.study)}.md from {len(records)} cells")


if __name__ == "__main__":
    cli.run(main, "relattr_tf.report")
