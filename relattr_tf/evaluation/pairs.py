"""Evaluation of an exported pair model on a data directory split (eval_<split>.json).

Accuracy follows the field's rule: pairs whose target is 0.5 (equal) are excluded; a pair is
correct when p > 0.5 for t = 1 or p < 0.5 for t = 0, so p exactly 0.5 counts as wrong.
Where the data carries exact truth (the embedded benchmark), accuracy against it is reported too.
Each pair is also scored in the other order: DACRL is not antisymmetric (p(a, b) and
1 - p(b, a) differ), so the symmetrised p = (p(a, b) + 1 - p(b, a)) / 2 gets its own accuracy
beside the single-order one (for a score model the two are the same by construction).
"""
import os
import time

import numpy as np
import tensorflow as tf

from relattr_tf.artifacts.pair_model import load_exported
from relattr_tf.artifacts.run_config import load_run_config
from relattr_tf.data import pipeline, schema
from relattr_tf.evaluation import report
from relattr_tf.models import boxes

METHODS = ("auto", "pairwise")


def pair_accuracy(targets, p):
    """(accuracy, used, excluded) under the equal-pairs-excluded rule."""
    targets, p = np.asarray(targets, np.float64), np.asarray(p, np.float64)
    used = targets != 0.5
    correct = np.where(targets == 1.0, p > 0.5, p < 0.5)[used]
    accuracy = float(correct.mean()) if correct.size else float("nan")
    return accuracy, int(used.sum()), int((~used).sum())


def _batched(fn, rows, store, batch_size):
    """fn over the images of `rows`, batch by batch; concatenated numpy output."""
    out = []
    for start in range(0, len(rows), batch_size):
        images = tf.cast(store.images(rows[start:start + batch_size]), tf.float32) / 255.0
        out.append(fn(images))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def predict_from_table(model, meta, data_dir, attribute, split, image_size, batch_size=64,
                       image_memory_mb=2048, skip_corrupt=False):
    """(targets, true_targets, p, p of the pairs swapped, method): every test image through
    the trunk once.

    Score models (an exported `score`) give p = sigmoid(v_a - v_b); feature models (`features`
    and `compare`) run only their comparator per pair. None when the export has neither.
    """
    has_score = hasattr(model, "score")
    if not has_score and not (hasattr(model, "features") and hasattr(model, "compare")):
        return None
    store = pipeline.ImageStore(data_dir, pipeline.image_tables_of(meta, data_dir, attribute,
                                                                   split),
                                image_size, image_memory_mb, meta, skip_corrupt)
    pairs = pipeline.pair_rows(pipeline.read_pairs(meta, data_dir, attribute, split,
                                                   skip_corrupt),
                               store, f"{attribute}/{split}", skip_corrupt)
    rows_a, rows_b = pairs["row_a"], pairs["row_b"]
    used = np.unique(np.concatenate([rows_a, rows_b]))
    position = np.zeros(max(store.count, 1), np.int64)
    position[used] = np.arange(len(used))
    if has_score:
        scores = _batched(lambda x: model.score(image=x)["score"].numpy().ravel(), used, store,
                          batch_size)
        logits = scores[position[rows_a]] - scores[position[rows_b]]
        p = (1.0 / (1.0 + np.exp(-logits.astype(np.float32)))).astype(np.float32)
        swapped = (1.0 / (1.0 + np.exp(logits.astype(np.float32)))).astype(np.float32)
        method = "score"
    else:
        features = _batched(lambda x: model.features(image=x)["features"].numpy(), used, store,
                            batch_size)
        p, swapped = (np.zeros(len(rows_a), np.float32) for _ in range(2))
        for start in range(0, len(rows_a), 4 * batch_size):
            stop = start + 4 * batch_size
            first = features[position[rows_a[start:stop]]]
            second = features[position[rows_b[start:stop]]]
            p[start:stop] = model.compare(features_a=first,
                                          features_b=second)["p"].numpy().ravel()
            swapped[start:stop] = model.compare(features_a=second,
                                                features_b=first)["p"].numpy().ravel()
        method = "features"
    return pairs[schema.TARGET], pairs[schema.TRUE_TARGET], p, swapped, method


def _coverage(predicted, truth):
    """{mean_iou, iou_at_least_half, contains_centre} of predicted against true boxes."""
    iou = boxes.iou(predicted, truth)
    return dict(mean_iou=float(iou.mean()), iou_at_least_half=float((iou >= 0.5).mean()),
                contains_centre=float(boxes.contains_centre(predicted, truth).mean()))


def box_coverage(model, meta, data_dir, attribute, split, image_size, batch_size=64,
                 image_memory_mb=2048, skip_corrupt=False, floor_scale=None):
    """How well a localizing model's regions (an exported `transform`) cover the subject, over the
    images of the split's tables whose subject box the data knows: mean IoU, the share with
    IoU >= 0.5 and the share whose box contains the subject's centre. None without boxes.
    Predicted regions are their bounding boxes (for an affine transform, of the sheared
    square), clipped to the image. With `floor_scale`, "centred_box" holds the same figures
    for the untrained localiser's box (centred, that scale): what learning must beat."""
    store = pipeline.image_store(meta, data_dir, attribute, split, pipeline.InputConfig(
        image_size=image_size, image_memory_mb=image_memory_mb, skip_corrupt=skip_corrupt))
    rows = np.flatnonzero(store.boxes[:, 0] >= 0)
    if not len(rows):
        return None
    predicted = boxes.box_corners(_batched(
        lambda x: model.transform(image=x)["theta"].numpy(), rows, store, batch_size))
    predicted = np.clip(predicted, 0.0, 1.0)  # what lies outside the image is zero padding
    truth = store.boxes[rows]
    out = dict(images=int(len(rows)), **_coverage(predicted, truth))
    if floor_scale is not None:
        out["centred_box"] = _coverage(boxes.centred_corners(floor_scale, len(rows)), truth)
    return out


def predict_pairwise(model, meta, data_dir, attribute, split, image_size, batch_size=64,
                     image_memory_mb=2048, skip_corrupt=False):
    """(targets, true_targets, p, p of the pairs swapped, "pairwise"): both images of every
    pair through the network, in both orders."""
    config = pipeline.InputConfig(batch_size=batch_size, image_size=image_size, augment=(),
                                  image_memory_mb=image_memory_mb, skip_corrupt=skip_corrupt)
    ds = pipeline.make_dataset(data_dir, attribute, split, config, training=False,
                               with_info=True, meta=meta)
    targets, truths, probabilities, swapped = [], [], [], []
    try:
        for (image_a, image_b), target, info in ds:
            probabilities.append(model.pair(image_a=image_a, image_b=image_b)["p"].numpy().ravel())
            swapped.append(model.pair(image_a=image_b, image_b=image_a)["p"].numpy().ravel())
            targets.append(target.numpy())
            truths.append(info[schema.TRUE_TARGET].numpy())
    except tf.errors.OpError as e:
        pipeline.raise_for_unreadable(pipeline.pair_split_files(meta, data_dir, attribute,
                                                                split), e)
    if not targets:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), "pairwise"
    return (np.concatenate(targets), np.concatenate(truths), np.concatenate(probabilities),
            np.concatenate(swapped), "pairwise")


def evaluate_split(model_dir, data_dir, attribute, split, batch_size=64, image_memory_mb=2048,
                   skip_corrupt=False, method="auto"):
    """Evaluates model_dir's exported model; writes and returns eval_<split>.json's content.

    method "auto" runs each test image through the trunk once where the export allows it
    (score or feature models) and falls back to "pairwise" (both images of every pair).
    """
    started = time.time()
    run = load_run_config(model_dir)
    model = load_exported(model_dir)
    meta = schema.read_metadata(data_dir)
    schema.pair_split(meta, data_dir, attribute, split)
    args = (model, meta, data_dir, attribute, split, run.data.image_size, batch_size,
            image_memory_mb, skip_corrupt)
    predicted = predict_from_table(*args) if method == "auto" else None
    targets, truths, p, swapped, used_method = predicted or predict_pairwise(*args)
    symmetric = (p + 1.0 - swapped) / 2
    accuracy, used, excluded = pair_accuracy(targets, p)
    result = dict(model=run.model, attribute=attribute, split=split, data_dir=data_dir,
                  accuracy=accuracy, symmetrised_accuracy=pair_accuracy(targets, symmetric)[0],
                  pairs_used=used, pairs_excluded_equal=excluded, method=used_method,
                  seconds=round(time.time() - started, 2))
    known = truths >= 0
    if known.any():
        truth_accuracy, truth_used, _ = pair_accuracy(truths[known], p[known])
        result.update(truth_accuracy=truth_accuracy, truth_pairs=truth_used,
                      symmetrised_truth_accuracy=pair_accuracy(truths[known],
                                                               symmetric[known])[0])
    if hasattr(model, "transform"):
        coverage = box_coverage(*args, floor_scale=run.family.box_scale_init)
        if coverage:
            result["box_coverage"] = coverage
            result["seconds"] = round(time.time() - started, 2)
    report.write_json(os.path.join(model_dir, f"eval_{split}.json"), result)
    return result


def summary_line(result):
    line = (f"{result['attribute']} / {result['split']}: accuracy {100 * result['accuracy']:.2f}% "
            f"on {result['pairs_used']} pairs ({result['pairs_excluded_equal']} equal pairs "
            f"excluded)")
    if "truth_accuracy" in result:
        line += f"; against exact truth {100 * result['truth_accuracy']:.2f}%"
    if "symmetrised_accuracy" in result:
        line += f"; both orders averaged {100 * result['symmetrised_accuracy']:.2f}%"
    if "box_coverage" in result:
        box = result["box_coverage"]
        line += (f"; boxes: mean IoU {box['mean_iou']:.2f}, IoU >= 0.5 on "
                 f"{100 * box['iou_at_least_half']:.1f}%, subject centre inside on "
                 f"{100 * box['contains_centre']:.1f}% of {box['images']} images")
        if "centred_box" in box:
            floor = box["centred_box"]
            line += (f" (the untrained centred box: {floor['mean_iou']:.2f}, "
                     f"{100 * floor['iou_at_least_half']:.1f}%, "
                     f"{100 * floor['contains_centre']:.1f}%)")
    return line
