"""Trains and evaluates over numbered splits (Zap50K-1's ten) and reports mean ± std.

    python -m relattr_tf.train_splits --flagfile=configs/dacrl_zappos1.flags \
        --backbone_weights=PATH/vgg16_notop.h5

For k in --split_numbers, trains on `<train_prefix>-kk` and evaluates on `<test_prefix>-kk`
(one network per attribute with --attribute=all) under <model_dir>/split-kk, then writes
<model_dir>/splits_summary.md and .csv: per attribute the mean and standard deviation of the
accuracy over the splits, and their mean, as the Zap50K-1 protocol reports it. Finished runs are
reused on a rerun.
"""
import os

from absl import app, flags

from relattr_tf import cli
from relattr_tf import train as train_flags

flags.DEFINE_string("train_prefix", "train", "Training splits are <train_prefix>-01 ...")
flags.DEFINE_string("test_prefix", "test", "Test splits are <test_prefix>-01 ...")
flags.DEFINE_list("split_numbers", [str(k) for k in range(1, 11)], "Which numbered splits.")
flags.register_validator("split_numbers", lambda v: bool(v) and all(
    s.isdigit() and 1 <= int(s) <= 99 for s in v), "--split_numbers: integers in 1..99")
FLAGS = flags.FLAGS


def run_splits(config, model_dir, numbers, train_prefix, test_prefix):
    """{attribute: [accuracy per split]} over the numbered splits."""
    from relattr_tf.data import schema
    from relattr_tf.training import run
    run.ensure_data(config)
    attributes = (schema.read_metadata(config.data.data_dir)["attributes"]
                  if config.family.attribute == "all" else [config.family.attribute])
    accuracies = {a: [] for a in attributes}
    for number in numbers:
        train_split, test_split = f"{train_prefix}-{number:02d}", f"{test_prefix}-{number:02d}"
        for attribute in attributes:
            run_config = config.with_values(attribute=attribute, train_split=(train_split,),
                                            eval_split=(test_split,), val_split="")
            run_dir = os.path.join(model_dir, f"split-{number:02d}", attribute)
            accuracies[attribute].append(
                run.train_or_reuse(run_config, run_dir)[test_split]["accuracy"])
    return accuracies


def write_summary(accuracies, model_dir):
    import numpy as np
    from relattr_tf.evaluation import write_markdown_and_csv
    rows = [[attribute, f"{100 * np.mean(v):.2f}", f"{100 * np.std(v):.2f}", str(len(v))]
            for attribute, v in list(accuracies.items()) + [
                ("mean", [float(np.mean(v)) for v in zip(*accuracies.values())])]]
    return write_markdown_and_csv(os.path.join(model_dir, "splits_summary"),
                                  ["attribute", "mean accuracy", "std", "splits"], rows,
                                  ["attribute", "mean_accuracy", "std", "splits"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = train_flags.prepare()
    accuracies = run_splits(config, FLAGS.model_dir, [int(k) for k in FLAGS.split_numbers],
                            FLAGS.train_prefix, FLAGS.test_prefix)
    print(write_summary(accuracies, FLAGS.model_dir))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.train_splits")
