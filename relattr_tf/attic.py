"""ATTIC: rounds of imagining hard pairs, having them labelled and retraining the ranker.

    python -m relattr_tf.attic --flagfile=configs/attic_synth.flags
    python -m relattr_tf.attic --flagfile=configs/attic_synth.flags --labeler=human
        ... label <model_dir>/round-01/labelling in Label Studio, export JSON, then:
    python -m relattr_tf.attic --flagfile=configs/attic_synth.flags --labeler=human \
        --import_labels=export.json

Each round: the adversarial phase (the ranker against the control net, through the frozen
generator) -> the labelling package of its T pairs -> labels (the simulated crowd, labels
from y, or people) -> the accepted pairs appended to --data_dir -> the ranker retrained from
its pretrained state (--warm_start) on real + labelled pairs and evaluated. Rerunning the same
command continues where it stopped. Same settings as relattr_tf.train (--model=attic).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_training_flags(model="attic")
cli.define_rounds_flag(1, "Rounds of generate -> label -> retrain.")
flags.DEFINE_enum("labeler", "crowd", ["crowd", "auto", "human"],
                  "Who labels the generated pairs: the simulated crowd (embedded benchmark), "
                  "labels inferred from y (no labelling), or people (Label Studio / CSV).")
flags.DEFINE_boolean("stop_after_export", False, "Stop once a round's labelling package is "
                     "written; the same command with --import_labels imports its answers and "
                     "goes on to the next round's package.")
flags.DEFINE_string("import_labels", "", "A Label Studio JSON export or a filled-in tasks.csv "
                    "with the answers for the round waiting for labels.")
flags.DEFINE_boolean("retrain", True, "Retrain the ranker from its pretrained state on real + "
                     "labelled pairs after each round's labels.")
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    cli.check_family("relattr_tf.attic", "attic")
    config = cli.prepare()
    from relattr_tf.experiments import active_loop
    options = active_loop.LoopOptions(
        rounds=FLAGS.rounds, labeler=FLAGS.labeler, stop_after_export=FLAGS.stop_after_export,
        import_labels=FLAGS.import_labels, retrain=FLAGS.retrain, crowd_seed=config.train.seed,
        command=cli.command_line("relattr_tf.attic", leave_out=("--import_labels",)))
    active_loop.run_rounds(config, FLAGS.model_dir, options)


if __name__ == "__main__":
    cli.run(main, "relattr_tf.attic")
