"""The embedded benchmark's simulated crowd as annotators of generated pairs.

Each worker measures the two images' pixels with `relattr_tf.data.synthetic.measure` (the
benchmark's own rules), perceives the difference with noise and answers, exactly as the crowd
that labelled the benchmark; the answers are written as a Label Studio JSON export, so the
offline loop imports them with the same code as people's answers.
"""
import json

import numpy as np

from relattr_tf.data.synthetic import attributes, crowd as crowd_lib
from relattr_tf.data.synthetic.measure import measure
from relattr_tf.labelling import label_studio

CROWD = crowd_lib.Crowd()


def can_label(attribute):
    """Whether the benchmark's rules measure this attribute (its images only)."""
    return attribute in attributes.BY_NAME


def measured(images, attribute):
    k = attributes.ATTRIBUTE_NAMES.index(attribute)
    return np.array([measure(image)[k] for image in images])


def worker_answers(images_a, images_b, attribute, seed, pair_ids=None):
    """Per pair: [(worker, answer, confidence)] of every worker."""
    scale = attributes.BY_NAME[attribute].scale
    strength_a, strength_b = measured(images_a, attribute), measured(images_b, attribute)
    pair_ids = pair_ids if pair_ids is not None else range(len(images_a))
    out = []
    for pair_id, a, b in zip(pair_ids, strength_a, strength_b):
        answers, confidences = CROWD.answers(a, b, scale, crowd_lib.pair_rng(seed, pair_id))
        out.append([(f"crowd-{w + 1}", answer, float(c)) for w, (answer, c) in
                    enumerate(zip(answers, confidences))])
    return out


def majority_labels(images_a, images_b, attribute, seed, pair_ids=None):
    """Per pair: the crowd's vote (dict(target, agreement, confidence)) or None (illegible)."""
    return [crowd_lib.majority_vote([a for _, a, _ in answers], [c for _, _, c in answers])
            for answers in worker_answers(images_a, images_b, attribute, seed, pair_ids)]


def true_targets(images_a, images_b, attribute):
    """The exact truth of each pair from its measured strengths (None where unreadable)."""
    return [crowd_lib.true_target(a, b) for a, b in
            zip(measured(images_a, attribute), measured(images_b, attribute))]


def write_crowd_export(package, path, seed=0):
    """The crowd's answers to every pair of a labelling package (labelling.package.read),
    as a Label Studio JSON export at `path`."""
    attribute = package["generator_attribute"]
    images_a, images_b = package["images"]()
    pair_ids = [p["pair_id"] for p in package["pairs"]]
    answers = worker_answers(images_a, images_b, attribute, seed, pair_ids)
    tasks = [label_studio.export_task(i + 1, task["data"], pair_answers)
             for i, (task, pair_answers) in enumerate(zip(package["tasks"], answers))]
    # Label Studio's confidence is a 1-3 rating; the answers round-trip through it.
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tasks, f, indent=1)
    return path
