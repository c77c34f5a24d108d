"""Measured ceilings of the embedded benchmark's pretraining heads: how well a label can be read
from the pixels by an oracle that is told where each object is.

For the heads whose label a picture may not show (an occluded or tiny distractor's shape, its
stripes, a faint light gradient), the oracle renders fresh scenes as the pretrain table was
drawn, takes each object's visible pixels from the renderer's owner map, reads one measurement
from the final pixels (mean colour, radial kurtosis, stripe contrast, visible area, the fitted
light gradient, the outline's second moments) and classifies it with the best rule fitted on half of the scenes (nearest
centroid, or one threshold), scored on the other half. That accuracy is the head's ceiling in
the acceptance gate (evaluation.trunk_gate): a trunk is not asked to read what a mask-given
oracle cannot. The oracle sees more than a network does (the masks), so a ceiling is an
optimistic bound on what the pictures allow; a network may still beat a one-measurement rule.
"""
import numpy as np

from relattr_tf.data import schema
from relattr_tf.data.synthetic import attributes, render
from relattr_tf.data.synthetic.measure import LUMA, _principal_axes, _radial_kurtosis

MIN_PIXELS = 5  # fewer visible pixels than this: the oracle cannot read the object


def _visible(owner, index, size, cover):
    """Pixels (at the image's size) of which at least `cover` shows object `index`."""
    s = render.SUPERSAMPLE
    return (owner == index).reshape(size, s, size, s).mean(axis=(1, 3)) >= cover


def _object_readings(image, owner, index, size):
    """(mean colour, radial kurtosis, stripe contrast, visible pixels, elongation, long axis'
    orientation in [0, pi)) of one object; NaNs where too little of it shows."""
    mask = _visible(owner, index, size, 0.5)
    core = _visible(owner, index, size, 1.0)
    count = int(mask.sum())
    colour = image[core].mean(0) if core.sum() >= 1 else np.full(3, np.nan)
    if count < MIN_PIXELS:
        return colour, np.nan, np.nan, count, np.nan, np.nan
    elongation, angle, x, y = _principal_axes(mask)
    kurtosis = _radial_kurtosis(x, y)
    luma = image[core] @ LUMA if core.sum() >= 2 else image[mask] @ LUMA
    return (colour, kurtosis, float(np.std(luma) / max(np.mean(luma), 1e-6)), count,
            elongation, np.radians(angle) % np.pi)


def _light_side(image, owner, size):
    """The side a plane fitted to the background's luminance rises towards (as light_side)."""
    background = _visible(owner, -1, size, 1.0)
    gy, gx = np.mgrid[0:size, 0:size] / size - 0.5
    design = np.stack([np.ones(background.sum()), gx[background], gy[background]], axis=1)
    (_, bx, by), *_ = np.linalg.lstsq(design, image[background] @ LUMA, rcond=None)
    direction = np.arctan2(by, bx)
    return int((direction + np.pi / 4) % (2 * np.pi) // (np.pi / 2))


def render_readings(count, size, scenery=render.BENCHMARK_SCENERY, global_strengths="drawn",
                    seed=0):
    """Renders `count` scenes as make_synthetic's pretrain table does and returns, per scene,
    its label vector (laid out as render.label_heads(scenery)) and the oracle's readings."""
    heads = render.label_heads(scenery)
    labels, readings = [], []
    for index in range(count):
        rng = np.random.default_rng([seed, 7, index])
        latent = rng.uniform(0.0, 1.0, len(attributes.ATTRIBUTE_NAMES))
        if global_strengths == "middle":
            latent[attributes.GLOBAL_COLUMNS] = 0.5
        scene = {}
        image = render.to_uint8(render.render(latent, rng, size, scene, scenery))
        image = image.astype(np.float32) / 255.0
        owner = scene["owner"]
        objects = [_object_readings(image, owner, i, size)
                   for i in range(len(scene["distractors"]))]
        main = scene["distractors"].index(render.main_distractor(scene))
        labels.append(render.scene_labels(scene, heads))
        readings.append(dict(objects=objects, main=main,
                             colours=[d["colour"] for d in scene["distractors"]],
                             light_side=_light_side(image, owner, size)))
    return np.stack(labels), readings


def _threshold_accuracy(x_fit, y_fit, x_test, y_test):
    """Accuracy on the test half of the best one-threshold rule (either direction) on the fit
    half; an unreadable value (NaN) gets the fit half's commonest class."""
    prior = int(np.bincount(y_fit.astype(int)).argmax())
    ok = np.isfinite(x_fit)
    candidates = np.unique(np.quantile(x_fit[ok], np.linspace(0.01, 0.99, 197)))
    best, rule = -1.0, (np.inf, 1)
    for t in candidates:
        for sign in (1, -1):
            guess = np.where(ok, (sign * (x_fit - t) > 0).astype(int), prior)
            accuracy = np.mean(guess == y_fit)
            if accuracy > best:
                best, rule = accuracy, (t, sign)
    t, sign = rule
    guess = np.where(np.isfinite(x_test), (sign * (x_test - t) > 0).astype(int), prior)
    return float(np.mean(guess == y_test))


def _nearest_colour(centroids, colour):
    if not np.all(np.isfinite(colour)):
        return -1
    return int(np.argmin(np.sum((centroids - colour) ** 2, axis=1)))


def ceilings(labels, readings, heads=render.LABEL_HEADS):
    """{head: oracle accuracy} for the heads whose labels a picture may hide; labels laid out
    as `heads`."""
    columns = {name: start for name, (start, _) in schema.label_columns(heads).items()}
    half = len(labels) // 2
    fit, test = slice(0, half), slice(half, None)
    main = [r["objects"][r["main"]] for r in readings]
    main_colour = labels[:, columns["main_distractor_colour"]].astype(int)

    # Colours: nearest centroid of every object's mean colour, centroids from the fit half.
    pairs = [(o[0], c) for r in readings[:half] for o, c in zip(r["objects"], r["colours"])]
    colours = np.array([c for _, c in pairs])
    values = np.array([v for v, _ in pairs])
    ok = np.all(np.isfinite(values), axis=1)
    centroids = np.stack([values[ok & (colours == k)].mean(0)
                          for k in range(len(render.DISTRACTOR_RGB))])
    named_main = np.array([_nearest_colour(centroids, m[0]) for m in main[half:]])
    out = dict(main_distractor_colour=float(np.mean(named_main == main_colour[half:])))
    start = columns["distractor_colours"]
    right = []
    for r, lab in zip(readings[half:], labels[half:]):
        named = np.zeros(len(render.DISTRACTOR_RGB))
        for o in r["objects"]:
            k = _nearest_colour(centroids, o[0])
            if k >= 0:
                named[k] = 1.0
        right.append(np.array_equal(named, lab[start:start + len(render.DISTRACTOR_RGB)]))
    out["distractor_colours"] = float(np.mean(right))

    shape_heads = (("main_distractor_pointed", 1), ("main_distractor_striped", 2),
                   ("main_distractor_large", 3), ("main_distractor_elongated", 4))
    for head, reading in shape_heads:
        if head not in columns:
            continue
        x = np.array([m[reading] for m in main], np.float64)
        y = labels[:, columns[head]].astype(int)
        out[head] = _threshold_accuracy(x[fit], y[fit], x[test], y[test])
    if "main_distractor_orientation" in columns:
        # The outline's long axis, binned as the label; an unreadable one counts as wrong.
        quarters = render.ORIENTATION_QUARTERS
        axis = np.array([m[5] for m in main[half:]], np.float64)
        read = np.where(np.isfinite(axis), np.minimum(
            np.nan_to_num(axis) / np.pi * quarters, quarters - 1).astype(int), -1)
        out["main_distractor_orientation"] = float(np.mean(
            read == labels[half:, columns["main_distractor_orientation"]]))
    side = np.array([r["light_side"] for r in readings])
    out["light_side"] = float(np.mean(side[test] == labels[test, columns["light_side"]]))
    return out


def head_ceilings(size, scenery=render.BENCHMARK_SCENERY, global_strengths="drawn",
                  count=3000, seed=0):
    """{head: oracle accuracy} on `count` fresh scenes (half fit, half scored)."""
    labels, readings = render_readings(count, size, scenery, global_strengths, seed)
    return ceilings(labels, readings, render.label_heads(scenery))
