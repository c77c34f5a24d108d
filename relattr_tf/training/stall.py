"""The stall detector of a pair ranker: did its head die in training?

A ranker whose head died outputs p = 0.5 for every pair: its training loss sits at ln 2 and its
p does not spread. DACRL's head dies by its cross-image convolution: Adam's first steps move every unit the same
way on non-negative trunk features, and once a unit's ReLU is off for every pair nothing reaches
the head through it. The report, at the end of training:
the last epoch's training loss and its distance from ln 2, p's standard deviation over
validation pairs, and for DACRL the share of the last cross-image layer's channels that are
active (> 0) somewhere on at least one of those pairs.
"""
import math

import keras
import numpy as np

LN2 = math.log(2.0)
LOSS_BAND = 0.005  # a training loss this close to ln 2: the ranker says 0.5 to everything


def stalled(final_loss):
    """Whether a last-epoch training loss says the ranker stalled."""
    return final_loss is not None and abs(final_loss - LN2) < LOSS_BAND


def cross_conv_probe(parts):
    """(trunk, features_a, features_b) -> the last cross-image conv's output, or None for a
    model without one (RankNet, DeepSTN)."""
    comparator = parts.comparator
    if comparator is None:
        return None
    names = [layer.name for layer in comparator.layers if layer.name.startswith("cross_conv")]
    return keras.Model(comparator.inputs, comparator.get_layer(names[-1]).output)


def stall_report(parts, val_ds, history, batches=4):
    """{final_loss, loss_from_ln2, p_std, active_cross_units (None without a cross-image
    conv), stalled} over the first `batches` validation batches."""
    losses = (history.history.get("loss") or [None]) if history else [None]
    final = losses[-1]
    probe = cross_conv_probe(parts)
    p, active = [], None
    for (image_a, image_b), _ in val_ds.take(batches):
        p.append(np.asarray(parts.network((image_a, image_b), training=False)).ravel())
        if probe is not None:
            both = [parts.encoder(image, training=False) for image in (image_a, image_b)]
            fired = np.asarray(probe(both, training=False)).max(axis=(0, 1, 2)) > 0
            active = fired if active is None else active | fired
    p = np.concatenate(p) if p else np.zeros(0)
    return dict(final_loss=None if final is None else float(final),
                loss_from_ln2=None if final is None else float(abs(final - LN2)),
                p_std=float(p.std()) if p.size else None,
                active_cross_units=None if active is None else float(active.mean()),
                stalled=bool(stalled(final)))


def report_line(report):
    """One line; a warning when the ranker stalled."""
    parts = [f"training loss {report['final_loss']:.4f}" if report["final_loss"] is not None
             else "no training loss", f"p std {report['p_std']:.3f}"
             if report["p_std"] is not None else "no validation pairs"]
    if report["active_cross_units"] is not None:
        parts.append(f"{100 * report['active_cross_units']:.0f}% of the cross-image units active")
    line = "stall check: " + ", ".join(parts)
    if report["stalled"]:
        line += (f". WARNING: the training loss ended within {LOSS_BAND} of ln 2: the ranker "
                 f"says p = 0.5 to every pair (a dead head); see docs/models/dacrl.md")
    return line
