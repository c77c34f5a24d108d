"""The DACRL ablation: RankNet vs DACRL without attention vs DACRL, on coarse and fine pairs.

    python -m relattr_tf.ablation --flagfile=configs/ablation.flags

Trains every (pair set, attribute, model, seed) with the training flags given (the same recipe
for every model), evaluates it, and writes one ledger record per cell into
<results_dir>/<study>/ as it finishes; a rerun skips the cells in the ledger. Then
<model_dir>/ablation.md, .csv and .png from the ledger: accuracy (crowd labels) and accuracy
against exact truth, mean ± std over seeds, headed by where the figures came from.
--models may add DeepSTN's two stages (deepstn_crop, then deepstn starting from it).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

SPLITS = ("coarse", "fine")
MODELS = ("ranknet", "dacrl_noatt", "dacrl", "deepstn_crop", "deepstn")
cli.define_training_flags()
cli.define_experiment_flags(attributes=("brightness", "contrast", "size", "stripes"))
flags.DEFINE_list("models", list(MODELS), "Models to compare.")
flags.DEFINE_list("pair_sets", list(SPLITS), "coarse: train/test, fine: *_fine splits.")
flags.register_validator("models", lambda v: bool(v) and set(v) <= set(MODELS),
                         f"--models: a list out of {', '.join(MODELS)}")
flags.register_validator("pair_sets", lambda v: bool(v) and set(v) <= set(SPLITS),
                         f"--pair_sets: a list out of {', '.join(SPLITS)}")
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    config = cli.prepare()
    from relattr_tf.experiments import ablation
    ledger = cli.ledger()
    ablation.run_ablation(config, FLAGS.model_dir, FLAGS.models, FLAGS.pair_sets,
                          FLAGS.attributes, [int(s) for s in FLAGS.seeds], ledger,
                          cli.command_line("relattr_tf.ablation"))
    print(ablation.write_table(ledger, FLAGS.model_dir))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.ablation")
