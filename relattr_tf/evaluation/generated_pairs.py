"""ATTIC's judgement of its generated pairs: how hard the slots' pairs are for the ranker, and
how legible to the simulated crowd, before and after an adversarial phase
(<model_dir>/eval_generated.json)."""
import os

import numpy as np
import tensorflow as tf

from relattr_tf.artifacts import control as control_artifact, pair_model
from relattr_tf.evaluation import report
from relattr_tf.labelling import simulated_crowd
from relattr_tf.models.control import inferred_target

RESULT_FILE = "eval_generated.json"


def pair_probabilities(exported, images_a, images_b, batch_size=128):
    return np.concatenate([
        exported.pair(image_a=tf.constant(images_a[i:i + batch_size], tf.float32),
                      image_b=tf.constant(images_b[i:i + batch_size], tf.float32))["p"]
        .numpy().ravel() for i in range(0, len(images_a), batch_size)])


def evaluate_generated(config, model_dir, start, seed=0):
    """How hard the slots' pairs are, before and after the adversarial phase.

    For the control at the start of the phase (fresh, or carried over) and at its end (its
    BatchNorm on the statistics of all the slots, as the labelling package), the T pairs are
    labelled by their y (inferred) and, on the embedded benchmark, by the simulated
    crowd measuring their pixels; reported: the illegible and equal rates, how often the crowd
    agrees with the y ordering, and the accuracy of the ranker at the start (--warm_start) and
    at the end on them (against the crowd, and against the inferred labels).
    start: (control, slots, decoder, info) as the phase started.
    """
    net, size = config.family, config.data.image_size
    start_control, slots, decoder, info = start
    generator_attribute = net.generator_attribute or net.attribute
    end_control, _ = control_artifact.load_control(model_dir)
    k = info["attributes"].index(generator_attribute)
    rankers = {"ranker_end": pair_model.load_exported(model_dir)}
    if net.warm_start:
        rankers["ranker_start"] = pair_model.load_exported(net.warm_start)
    result = dict(attribute=net.attribute, generator_attribute=generator_attribute,
                  slots=int(len(slots)))
    for phase, control in (("control_start", start_control), ("control_end", end_control)):
        (images_a, images_b), (y_a, y_b) = control_artifact.generate_pairs(
            control, decoder, slots, size, training=True)
        inferred = np.asarray(inferred_target(y_a[:, k], y_b[:, k]))
        entry = dict(y_step_mean=float(np.mean(np.abs(y_a[:, k] - y_b[:, k]))))
        labels = None
        if simulated_crowd.can_label(generator_attribute):
            labels = simulated_crowd.majority_labels(images_a, images_b,
                                                     generator_attribute, seed)
            legible = np.array([lab is not None for lab in labels])
            crowd = np.array([lab["target"] if lab else np.nan for lab in labels])
            decided = legible & (crowd != 0.5)
            entry.update(illegible_rate=float(1 - legible.mean()),
                         equal_rate=float(np.mean(crowd[legible] == 0.5)) if legible.any()
                         else float("nan"),
                         crowd_agrees_with_y=float(np.mean(crowd[decided] == inferred[decided]))
                         if decided.any() else float("nan"))
        for name, exported in rankers.items():
            p = pair_probabilities(exported, images_a, images_b)
            correct = np.where(inferred == 1.0, p > 0.5, p < 0.5)
            entry[f"{name}_accuracy_vs_y"] = float(correct.mean())
            if labels is not None and decided.any():
                correct = np.where(crowd == 1.0, p > 0.5, p < 0.5)[decided]
                entry[f"{name}_accuracy_vs_crowd"] = float(correct.mean())
        result[phase] = entry
    report.write_json(os.path.join(model_dir, RESULT_FILE), result)
    return result


def summary_line(result):
    end = result["control_end"]
    parts = [f"generated {result['attribute']} pairs ({result['slots']}):"]
    for key, label in (("ranker_end_accuracy_vs_crowd", "ranker vs crowd"),
                       ("ranker_end_accuracy_vs_y", "ranker vs y"),
                       ("illegible_rate", "illegible"), ("crowd_agrees_with_y", "crowd = y")):
        if key in end:
            parts.append(f"{label} {100 * end[key]:.1f}%")
    return " ".join(parts)
