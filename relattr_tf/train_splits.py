"""Trains and evaluates over numbered splits (Zap50K-1's ten) and reports mean ± std.

    python -m relattr_tf.train_splits --flagfile=configs/dacrl_zappos1.flags \
        --backbone_weights=PATH/vgg16_notop.h5

For k in --split_numbers, trains on `<train_prefix>-kk` and evaluates on `<test_prefix>-kk`
(one network per attribute with --attribute=all) under <model_dir>/split-kk, with one ledger
record per finished (split, attribute) in <results_dir>/<study>/; then writes
<model_dir>/splits_summary.md and .csv from the ledger: per attribute the mean and standard
deviation of the accuracy over the splits, and their mean. A rerun skips finished cells.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_training_flags()
flags.DEFINE_string("train_prefix", "train", "Training splits are <train_prefix>-01 ...")
flags.DEFINE_string("test_prefix", "test", "Test splits are <test_prefix>-01 ...")
flags.DEFINE_list("split_numbers", [str(k) for k in range(1, 11)], "Which numbered splits.")
flags.register_validator("split_numbers", lambda v: bool(v) and all(
    s.isdigit() and 1 <= int(s) <= 99 for s in v), "--split_numbers: integers in 1..99")
cli.define_ledger_flags()
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    config = cli.prepare()
    from relattr_tf.experiments import splits
    ledger = cli.ledger()
    splits.run_splits(config, FLAGS.model_dir, [int(k) for k in FLAGS.split_numbers],
                      FLAGS.train_prefix, FLAGS.test_prefix, ledger,
                      cli.command_line("relattr_tf.train_splits"))
    print(splits.write_summary(ledger, FLAGS.model_dir))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.train_splits")
