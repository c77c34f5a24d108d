"""Evaluation of an exported pair model on a data directory split, and results tables.

Accuracy follows the field's rule: pairs whose target is 0.5 (equal) are excluded; a pair is
correct when p > 0.5 for t = 1 or p < 0.5 for t = 0, so p exactly 0.5 counts as wrong.
Where the data carries exact truth (the embedded benchmark), accuracy against it is reported too.
"""
import json
import os

import numpy as np
import tensorflow as tf

from relattr_tf.config import load_run_config
from relattr_tf.data import pipeline
from relattr_tf.training.export import load_exported


def pair_accuracy(targets, p):
    """(accuracy, used, excluded) under the equal-pairs-excluded rule."""
    targets, p = np.asarray(targets, np.float64), np.asarray(p, np.float64)
    used = targets != 0.5
    correct = np.where(targets == 1.0, p > 0.5, p < 0.5)[used]
    accuracy = float(correct.mean()) if correct.size else float("nan")
    return accuracy, int(used.sum()), int((~used).sum())


def predict_split(model, data_dir, attribute, split, image_size, batch_size=64,
                  skip_corrupt=False):
    """(targets, true_targets, p) over a whole split, in file order."""
    config = pipeline.InputConfig(batch_size=batch_size, image_size=image_size, augment=(),
                                  cache=False, skip_corrupt=skip_corrupt)
    ds = pipeline.make_dataset(data_dir, attribute, split, config, training=False,
                               with_info=True)
    targets, truths, probabilities = [], [], []
    try:
        for (image_a, image_b), target, info in ds:
            probabilities.append(model.pair(image_a=image_a, image_b=image_b)["p"].numpy().ravel())
            targets.append(target.numpy())
            truths.append(info["true_target"].numpy())
    except tf.errors.OpError as e:
        pipeline.raise_for_unreadable(pipeline.shard_files(data_dir, attribute, split), e)
    if not targets:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(targets), np.concatenate(truths), np.concatenate(probabilities)


def evaluate_split(model_dir, data_dir, attribute, split, batch_size=64, skip_corrupt=False):
    """Evaluates model_dir's exported model; writes and returns eval_<split>.json's content."""
    run = load_run_config(model_dir)
    model = load_exported(model_dir)
    targets, truths, p = predict_split(model, data_dir, attribute, split, run.image_size,
                                       batch_size, skip_corrupt)
    accuracy, used, excluded = pair_accuracy(targets, p)
    result = dict(model=run.model, attribute=attribute, split=split, data_dir=data_dir,
                  accuracy=accuracy, pairs_used=used, pairs_excluded_equal=excluded)
    known = truths >= 0
    if known.any():
        truth_accuracy, truth_used, _ = pair_accuracy(truths[known], p[known])
        result.update(truth_accuracy=truth_accuracy, truth_pairs=truth_used)
    with tf.io.gfile.GFile(os.path.join(model_dir, f"eval_{split}.json"), "w") as f:
        f.write(json.dumps(result, indent=2, sort_keys=True))
    return result


def summary_line(result):
    line = (f"{result['attribute']} / {result['split']}: accuracy {100 * result['accuracy']:.2f}% "
            f"on {result['pairs_used']} pairs ({result['pairs_excluded_equal']} equal pairs "
            f"excluded)")
    if "truth_accuracy" in result:
        line += f"; against exact truth {100 * result['truth_accuracy']:.2f}%"
    return line


def write_markdown_and_csv(path_prefix, header, rows, csv_header=None, csv_rows=None):
    """Writes <prefix>.md (a markdown table) and <prefix>.csv; returns the markdown."""
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    csv = [",".join(csv_header or header)] + [",".join(r) for r in (csv_rows or rows)]
    for suffix, lines in ((".md", md), (".csv", csv)):
        with tf.io.gfile.GFile(path_prefix + suffix, "w") as f:
            f.write("\n".join(lines) + "\n")
    return "\n".join(md)


def write_table(rows, path_prefix, columns=("accuracy", "truth_accuracy")):
    """Per-attribute rows and their mean, as <prefix>.md (paper-style) and <prefix>.csv."""
    columns = [c for c in columns if any(c in r for r in rows)]
    means = {c: float(np.nanmean([r.get(c, np.nan) for r in rows])) for c in columns}
    table = [[label] + [f"{100 * values[c]:.2f}" if c in values else "" for c in columns]
             for label, values in [(r["attribute"], r) for r in rows] + [("mean", means)]]
    return write_markdown_and_csv(path_prefix, ["attribute"] + columns, table)
