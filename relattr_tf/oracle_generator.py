"""Builds the oracle generator: the embedded benchmark's renderer in TensorFlow, (y, z) ->
image, differentiable in y, saved as a generator artifact ATTIC and `visualize --kind=sweep`
load as they load a learned one (models.oracle_renderer). It is named an oracle everywhere: it
is not the paper's generator, it measures ATTIC's loop apart from any generator's faults.

    python -m relattr_tf.oracle_generator --flagfile=configs/oracle_synth.flags
    python -m relattr_tf.attic --flagfile=configs/attic_smoke.flags \
        --generator_dir=runs/oracle_synth/generator

Writes <model_dir>/generator/, eval_generator.json (the learned generators' measurements) and
sweeps.png, and a ledger cell in <results_dir>/<study>/ (a rerun skips it).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags, logging  # noqa: E402

from relattr_tf import cli  # noqa: E402

flags.DEFINE_string("model_dir", "runs/oracle_synth", "Where the generator artifact goes.")
flags.DEFINE_enum("image_size", "64", ["32", "64", "128"], "Side of the pictures, pixels.")
flags.DEFINE_integer("calibration_images", 3000, "Pictures measured to fit the strength map.",
                     lower_bound=100)
flags.DEFINE_integer("seed", 0, "Seed of the calibration and the evaluation.", lower_bound=0)
flags.DEFINE_integer("sweep_steps", 9, "Requested strengths per sweep.", lower_bound=3)
flags.DEFINE_integer("sweep_samples", 16, "Sweeps per attribute.", lower_bound=1)
flags.DEFINE_integer("eval_pairs", 400, "Fine-step pairs per attribute.", lower_bound=1)
cli.define_ledger_flags()
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # the SavedModel export logs every step
    from relattr_tf.evaluation import generator as generator_eval
    from relattr_tf.experiments import oracle_generator
    settings = dict(image_size=int(FLAGS.image_size), calibration_images=FLAGS.calibration_images,
                    seed=FLAGS.seed, sweep_steps=FLAGS.sweep_steps,
                    sweep_samples=FLAGS.sweep_samples, eval_pairs=FLAGS.eval_pairs)
    ledger = cli.ledger()
    result, record = oracle_generator.build_and_record(
        settings, FLAGS.model_dir, ledger, cli.command_line("relattr_tf.oracle_generator"))
    print(generator_eval.summary_line(result))
    print(f"oracle generator: {os.path.join(FLAGS.model_dir, 'generator')}; ledger: "
          f"{ledger.path(record['cell'])}")


if __name__ == "__main__":
    cli.run(main, "relattr_tf.oracle_generator")
