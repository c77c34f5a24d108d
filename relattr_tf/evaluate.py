"""Evaluates a trained model directory on a data directory split.

    python -m relattr_tf.evaluate --model_dir=runs/quickstart --data_dir=data/synthetic \
        --attribute=brightness --split=test
    python -m relattr_tf.evaluate --model_dir=runs/all --data_dir=DIR --attribute=all

Prints a one-line summary and writes eval_<split>.json into the model directory; with
--attribute=all (model_dir/<attribute> per attribute) it also writes results_<split>.md / .csv.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
import sys

from absl import app, flags

flags.DEFINE_string("model_dir", None, "Trained model directory (holds export/).")
flags.DEFINE_string("data_dir", None, "Data directory; default: the one it was trained on.")
flags.DEFINE_string("attribute", None, "Attribute, or 'all'; default: the trained one.")
flags.DEFINE_string("split", "test", "Split to evaluate.")
flags.DEFINE_integer("batch_size", 64, "Pairs per batch.")
flags.DEFINE_boolean("skip_corrupt", False, "Skip unreadable records (logged).")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from relattr_tf import evaluation
    from relattr_tf.config import load_run_config
    from relattr_tf.data import schema

    try:
        if FLAGS.attribute == "all":
            data_dir = FLAGS.data_dir
            if not data_dir:
                sys.exit("relattr_tf.evaluate: --attribute=all needs --data_dir")
            rows = []
            for attribute in schema.read_metadata(data_dir)["attributes"]:
                rows.append(evaluation.evaluate_split(
                    os.path.join(FLAGS.model_dir, attribute), data_dir, attribute, FLAGS.split,
                    FLAGS.batch_size, FLAGS.skip_corrupt))
                print(evaluation.summary_line(rows[-1]), flush=True)
            print(evaluation.write_table(rows, os.path.join(FLAGS.model_dir,
                                                            f"results_{FLAGS.split}")))
        else:
            run = load_run_config(FLAGS.model_dir)
            result = evaluation.evaluate_split(
                FLAGS.model_dir, FLAGS.data_dir or run.data_dir, FLAGS.attribute or run.attribute,
                FLAGS.split, FLAGS.batch_size, FLAGS.skip_corrupt)
            print(evaluation.summary_line(result), flush=True)
    except (schema.DataError, FileNotFoundError) as e:
        sys.exit(f"relattr_tf.evaluate: {e}")


if __name__ == "__main__":
    app.run(main)
