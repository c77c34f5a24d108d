"""Pictures of what a trained model learned: PNG contact sheets, also written to the model's
TensorBoard (tab Images, run `visualize`), and the figures measured on them as <kind>.json.

    python -m relattr_tf.visualize --model_dir=runs/quickstart --kind=saliency
    python -m relattr_tf.visualize --model_dir=runs/ablation/coarse/size/dacrl/seed0 \
        --kind=attention --out=pictures

--kind:
  saliency   any pair model: |d logit / d pixel| on test pairs, and the share of it inside the
             subject's box where the data knows the box (the embedded benchmark)
  attention  DACRL: the attention-weighted feature maps and the channels weighted most
  boxes      DeepSTN (or an ATTIC run's DeepSTN ranker): its boxes on test images
  sweep      a CVAE model_dir: images along each attribute (--attribute: one)
  generators a CVAE model_dir (and --compare: more generator model_dirs, the oracle's too):
             real images and each generator's picture for the same strengths
  pairs      an ATTIC run or active loop folder: generated pairs at the start and end of each
             phase and the pairs each round labelled, with their labels
--data_dir, --attribute default to the model's own. Sheets go to --out (default
<model_dir>/visualize).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli
from relattr_tf.visualization.kinds import KINDS

flags.DEFINE_string("model_dir", None, "Trained model directory (or an ATTIC loop's folder).")
flags.DEFINE_enum("kind", None, list(KINDS), "What to draw.")
flags.DEFINE_string("data_dir", "", "Data directory; default: the one the model trained on.")
flags.DEFINE_string("attribute", "", "Attribute; default: the model's (sweep: every one).")
flags.DEFINE_string("split", "", "Pair split whose pairs (saliency, attention) or images "
                    "(boxes) are drawn; default: the model's first evaluation split.")
flags.DEFINE_string("out", "", "Output folder for the PNGs and <kind>.json; default "
                    "<model_dir>/visualize.")
flags.DEFINE_integer("count", 8, "Pairs (saliency, attention), images (boxes), rows (sweep) "
                     "or generated pairs per row (pairs) shown.",
                     lower_bound=1)
flags.DEFINE_integer("measure_pairs", 200, "Pairs the saliency / attention box shares are "
                     "measured over.", lower_bound=1)
flags.DEFINE_integer("smoothgrad_samples", 0, "Saliency: average over this many noisy copies "
                     "(SmoothGrad, noise 0.1); 0: the plain gradient, as the DACRL paper.",
                     lower_bound=0)
flags.DEFINE_integer("top_channels", 4, "Attention: channels shown per pair.", lower_bound=1)
flags.DEFINE_integer("steps", 7, "Sweep: strengths per row.", lower_bound=2)
flags.DEFINE_integer("seed", 0, "Which pairs / images / z are drawn.")
flags.DEFINE_list("compare", [], "Generators: more generator model_dirs shown beside "
                  "--model_dir's.")
flags.mark_flags_as_required(["model_dir", "kind"])
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    from relattr_tf.visualization import drawing
    from relattr_tf.visualization.kinds import Options
    options = Options(FLAGS.model_dir, FLAGS.data_dir, FLAGS.attribute, FLAGS.split,
                      FLAGS.count, FLAGS.measure_pairs, FLAGS.smoothgrad_samples,
                      FLAGS.top_channels, FLAGS.steps, FLAGS.seed, tuple(FLAGS.compare))
    out_dir = FLAGS.out or os.path.join(FLAGS.model_dir, "visualize")
    paths, figures = drawing.draw(FLAGS.kind, options, out_dir)
    print(drawing.summary_line(FLAGS.kind, figures))
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main, "relattr_tf.visualize")
