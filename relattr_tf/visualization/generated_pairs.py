"""`python -m relattr_tf.visualize --kind=pairs`: ATTIC's generated pairs across phases and
rounds, with the labels they received."""
import json
import os

import numpy as np
import tensorflow as tf

from relattr_tf.artifacts import control as control_artifact, pair_model, rounds
from relattr_tf.artifacts.run_config import load_run_config
from relattr_tf.data import pipeline, schema
from relattr_tf.data.synthetic import crowd
from relattr_tf.evaluation import generated_pairs
from relattr_tf.labelling import package as package_lib, simulated_crowd
from relattr_tf.training import attic
from relattr_tf.visualization import sheets
from relattr_tf.visualization.kinds import relation


def _generated(control, slots, decoder, exported, image_size, count):
    (images_a, images_b), (y_a, y_b) = control_artifact.generate_pairs(
        control, decoder, slots, image_size, training=True)
    p = generated_pairs.pair_probabilities(exported, images_a[:count], images_b[:count])
    return images_a[:count], images_b[:count], y_a[:count], y_b[:count], p


def _crowd_targets(images_a, images_b, attribute, seed):
    """(the simulated crowd's target per pair, None when illegible; what None means)."""
    if not simulated_crowd.can_label(attribute):
        return [None] * len(images_a), "no crowd"  # it measures the benchmark's attributes
    labels = simulated_crowd.majority_labels(images_a, images_b, attribute, seed)
    return [label and label["target"] for label in labels], "illegible"


def _imported_targets(round_dir, package, config, data_dir=""):
    """(each pair's target as the round imported it into the data directory, None when it was
    not accepted; who labelled: crowd, auto or people), or (None, why) when unknown."""
    summary = rounds.labels_done(round_dir)
    if summary is None:
        return None, "unlabelled"
    source = summary.get("source", "")
    who = ("auto" if source == "y" else
           "crowd" if os.path.basename(source) == "crowd_export.json" else "people")
    if not summary.get("accepted"):
        return [None] * len(package["pairs"]), who
    data_dir = data_dir or config.data.data_dir
    try:
        meta = schema.read_metadata(data_dir)
        pairs = pipeline.read_pairs(meta, data_dir, config.family.attribute, summary["name"])
    except (FileNotFoundError, ValueError, tf.errors.NotFoundError):
        return None, "labels not in the data"
    targets = {a.decode(): float(t) for a, t in zip(pairs[schema.ID_A], pairs[schema.TARGET])}
    return [targets.get(f"{p['pair_id']}-a") for p in package["pairs"]], who


def _pair_row(images_a, images_b, y_a, y_b, p, targets, k, who, no_label):
    row = []
    for i in range(len(images_a)):
        pair = np.concatenate([images_a[i], images_b[i]], axis=1)
        label = no_label if targets[i] is None else f"{who} {relation(targets[i])}"
        implied = relation(crowd.true_target(y_a[i][k], y_b[i][k]))
        row.append(sheets.tile(pair, f"{label} · y {implied} · p {p[i]:.2f}",
                               size=sheets.TILE // 2))
    return row


def _phase_rows(phase_dir, round_dir, options):
    """(rows, row labels, attribute) of one adversarial phase: the slots' pairs at its start,
    then those its round labelled (a loop) or at its end (a single run)."""
    config = load_run_config(phase_dir)
    if config.family_name != "attic":
        raise ValueError(f"{phase_dir}: --kind=pairs needs an ATTIC run or an active loop's "
                         f"folder; this holds a {config.model} model")
    task = attic.AtticTask(config)
    attribute = task.generator_attribute()
    start_control, slots, decoder, info = task.build_control()
    k = info["attributes"].index(attribute)
    exported = pair_model.load_exported(phase_dir)
    size, count = config.data.image_size, options.count
    name = os.path.basename(round_dir) if round_dir else "phase"
    start = _generated(start_control, slots, decoder, exported, size, count)
    targets, no_label = _crowd_targets(*start[:2], attribute, options.seed)
    rows = [_pair_row(*start, targets, k, "crowd", no_label)]
    labels = [f"{name} start"]
    package_dir = os.path.join(round_dir or "", rounds.PACKAGE_DIR)
    if round_dir and os.path.exists(os.path.join(package_dir, package_lib.PAIRS_FILE)):
        package = package_lib.read(package_dir)
        images_a, images_b = (np.asarray(x[:count], np.float32) / 255.0
                              for x in package["images"]())
        pairs = package["pairs"][:count]
        targets, who = _imported_targets(round_dir, package, config, options.data_dir)
        no_label = "rejected" if targets is not None else who
        p = generated_pairs.pair_probabilities(exported, images_a, images_b)
        rows.append(_pair_row(images_a, images_b, [q["y_a"] for q in pairs],
                              [q["y_b"] for q in pairs], p,
                              (targets or [None] * len(pairs))[:count], k, who, no_label))
        labels.append(f"{name} labelled")
    else:
        control, _ = control_artifact.load_control(phase_dir)
        end = _generated(control, slots, decoder, exported, size, count)
        targets, no_label = _crowd_targets(*end[:2], attribute, options.seed)
        rows.append(_pair_row(*end, targets, k, "crowd", no_label))
        labels.append(f"{name} end")
    return rows, labels, attribute


def attic_pairs(options):
    """ATTIC's generated pairs: per phase, the slots' pairs at its start and at its end (an
    ATTIC model_dir), or per round of an active loop its phase's start and the pairs the round
    labelled, with the labels it imported. Rounds whose phase has not finished are skipped."""
    round_dirs = rounds.round_dirs(options.model_dir)
    phases = [(os.path.join(r, rounds.ADVERSARIAL_DIR), r) for r in round_dirs] or [
        (options.model_dir, "")]
    rows, labels, figures, skipped = [], [], {}, []
    for phase_dir, round_dir in phases:
        if round_dirs and not os.path.exists(os.path.join(phase_dir, pair_model.EXPORT_DIR)):
            skipped.append(os.path.basename(round_dir))
            continue
        phase_rows, phase_labels, attribute = _phase_rows(phase_dir, round_dir, options)
        rows += phase_rows
        labels += phase_labels
        result_path = os.path.join(phase_dir, generated_pairs.RESULT_FILE)
        if os.path.exists(result_path):
            with open(result_path) as f:
                figures[os.path.basename(round_dir) or "phase"] = json.load(f)
    if not rows:
        raise ValueError(f"{options.model_dir}: no round's adversarial phase has finished yet")
    if skipped:
        figures["unfinished_rounds"] = skipped
    title = (f"ATTIC's generated pairs ({attribute}): the label (crowd, auto from y, or "
             f"people), the label y implies, the phase's final ranker's p(a>b)")
    return {"pairs": (sheets.sheet(rows, title, labels), title)}, figures
