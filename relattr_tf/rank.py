"""Ranks your own images by a trained model's attribute.

    python -m relattr_tf.rank --model_dir=runs/quickstart --images=photos/ --out=ranked
    python -m relattr_tf.rank --model_dir=runs/dacrl_zappos1 --images='shoes/**/*.jpg' --out=r

Writes <out>/ranking.csv (file, rank, score; rank 1 shows the most), ranking.png (the images
in ranked order), skipped.csv (files that could not be read, with the reason) and
ranking.json (how the ranking was made and, for DACRL, how consistent its comparisons are).
Score models rank by their score; DACRL's pairwise p are aggregated by a Bradley-Terry fit
(relattr_tf.visualization.ranking).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

flags.DEFINE_string("model_dir", None, "Trained pair-model directory (holds export/).")
flags.DEFINE_string("images", None, "A folder (read recursively) or a glob pattern (quote it).")
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_integer("comparisons", 20, "DACRL: comparisons per image when there are more than "
                     "--all_pairs_limit images.", lower_bound=1)
flags.DEFINE_integer("all_pairs_limit", 200, "DACRL: compare every pair up to this many "
                     "images.", lower_bound=2)
flags.DEFINE_integer("sheet_limit", 100, "Images on the contact sheet at most (evenly spaced "
                     "ranks beyond).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Which pairs DACRL compares beyond --all_pairs_limit.")
flags.mark_flags_as_required(["model_dir", "images", "out"])
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    from relattr_tf.visualization import ranking
    summary = ranking.rank(FLAGS.model_dir, FLAGS.images, FLAGS.out, FLAGS.comparisons,
                           FLAGS.all_pairs_limit, FLAGS.sheet_limit, FLAGS.seed)
    print(ranking.summary_line(summary))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.rank")
