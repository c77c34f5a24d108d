"""Measuring a trained generator (the CVAE's decoder) with the benchmark's own rules.

On the embedded benchmark every generated image is measured by
`relattr_tf.data.synthetic.measure`, as its real images are, and judged by the simulated crowd:
  * sweep: per attribute, `sweep_samples` random (z, other strengths) each swept over
    `sweep_steps` requested strengths (mean +- 1.65 std of the training set, the 5th to 95th
    percentile of a normal, clipped to its min / max); Spearman correlation between requested
    and measured strength over all sweep images pooled (offsets between samples count against
    it) and its mean within each sweep, and the share of images whose strength is unreadable;
  * pairs: `pairs` pairs per attribute generated with that attribute alone changed by a small
    step (|step| uniform in the fine-grained range, FINE_DIFFERENCE x the attribute's scale)
    and the other strengths the same; the crowd labels them from the measured strengths:
    illegible rate, equal rate, and agreement (how often a legible, non-equal label has the
    sign of the requested change: what ATTIC's "Auto" labels rely on), and the measured
    spread, std(measured minus requested difference) / sqrt(2) in the attribute's scale units
    (per image when the two images' z are independent). The headline figures
    draw the two images with independent z, as ATTIC's pairs are; `same_z_*` repeats them
    with one z for both; `real_*` gives the crowd's rates on fine pairs of real images, when
    their strengths are given (the equal rate's reference);
  * sharpness: the pictures' high-frequency energy (mean squared Laplacian of luminance) over
    that of real images, when real images are given (1: as sharp as they are);
  * sampling speed (images / s).
On other data (faces) no measurement function exists: the sweep reports how much the images
change from one end to the other (mean absolute pixel difference) instead.
"""
import time

import numpy as np
import tensorflow as tf
from PIL import Image
from scipy import stats

from relattr_tf.artifacts.generator import decode_images
from relattr_tf.data.synthetic import attributes, crowd as crowd_lib, pairs as pairs_lib
from relattr_tf.data.synthetic.measure import measure

SPREAD = 1.65  # mean +- 1.65 std: the 5th to 95th percentile of a normal


def _ranges(info):
    mean, std = np.asarray(info["strength_mean"]), np.asarray(info["strength_std"])
    low = np.maximum(np.asarray(info["strength_min"]), mean - SPREAD * std)
    high = np.minimum(np.asarray(info["strength_max"]), mean + SPREAD * std)
    return low, high


def _base(info, rng, count):
    """Random strength vectors: each attribute drawn from N(mean, std) within its range."""
    mean, std = np.asarray(info["strength_mean"]), np.asarray(info["strength_std"])
    low, high = _ranges(info)
    return np.clip(rng.normal(mean, std, size=(count, len(mean))), low, high)


def measure_all(images):
    return np.stack([measure(image) for image in images])


def sweep(decoder, info, attribute, steps, samples, rng, batch_size=256):
    """(requested (samples, steps), images (samples, steps, S, S, 3)) for one attribute."""
    k = info["attributes"].index(attribute)
    low, high = _ranges(info)
    y = np.repeat(_base(info, rng, samples), steps, axis=0)
    requested = np.tile(np.linspace(low[k], high[k], steps), samples)
    y[:, k] = requested
    z = np.repeat(rng.normal(size=(samples, info["z_size"])), steps, axis=0)
    images = decode_images(decoder, y, z, batch_size)
    size = info["image_size"]
    return requested.reshape(samples, steps), images.reshape(samples, steps, size, size, 3)


def step_strengths(info, attribute, count, rng):
    """(y_a, y_b) (count, len(attributes)): random strengths, then `attribute` alone changed
    by a fine-grained step (|step| uniform in FINE_DIFFERENCE x its scale, either sign)."""
    k = info["attributes"].index(attribute)
    scale = attributes.BY_NAME[attribute].scale
    low, high = _ranges(info)
    y_a = _base(info, rng, count)
    step = rng.uniform(*pairs_lib.FINE_DIFFERENCE, size=count) * scale * rng.choice([-1, 1],
                                                                                    count)
    step = np.clip(step, -(high[k] - low[k]), high[k] - low[k])  # a narrow range
    # Both ends inside the range, the step whole: a starts far enough from the edge it leaves.
    y_a[:, k] = np.clip(y_a[:, k], low[k] - np.minimum(step, 0), high[k] - np.maximum(step, 0))
    y_b = y_a.copy()
    y_b[:, k] = y_a[:, k] + step
    return y_a, y_b


def step_pairs(decoder, info, attribute, count, rng, batch_size=256, same_z=False):
    """(requested steps (count,), images a, images b) with only `attribute` changed; z drawn
    for each image (ATTIC's pairs) or, with same_z, one for both."""
    k = info["attributes"].index(attribute)
    y_a, y_b = step_strengths(info, attribute, count, rng)
    z_a = rng.normal(size=(count, info["z_size"]))
    z_b = z_a if same_z else rng.normal(size=(count, info["z_size"]))
    return (y_a[:, k] - y_b[:, k], decode_images(decoder, y_a, z_a, batch_size),
            decode_images(decoder, y_b, z_b, batch_size))


def high_frequency_energy(images):
    """Mean squared discrete Laplacian of the luminance of (N, S, S, 3) images in [0, 1]."""
    luma = np.asarray(images, np.float64) @ np.array([0.299, 0.587, 0.114])
    laplacian = (luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] + luma[:, :-2, 1:-1] +
                 luma[:, 2:, 1:-1] - 4 * luma[:, 1:-1, 1:-1])
    return float(np.mean(laplacian ** 2))


def box_blur(images, width):
    """Each pixel the mean of the width x width block around it (edges repeated)."""
    images = np.asarray(images, np.float64)
    before, after = (width - 1) // 2, width // 2
    padded = np.pad(images, ((0, 0), (before, after), (before, after), (0, 0)), mode="edge")
    total = np.zeros_like(images)
    size = images.shape[1]
    for dy in range(width):
        for dx in range(width):
            total += padded[:, dy:dy + size, dx:dx + size]
    return total / width ** 2


def blur_references(images, widths=(2, 4)):
    """The reconstruction MSE a model would have that returned each image box-blurred over 2
    and 4 px: what a reconstruction MSE is judged against."""
    images = np.asarray(images, np.float64)
    return {f"blur_{w}px_mse": float(np.mean((box_blur(images, w) - images) ** 2))
            for w in widths}


def _crowd_figures(crowd, seed, attribute, step, strength_a, strength_b, scale):
    """{illegible_rate, equal_rate, pair_agreement, measured_spread} of the simulated crowd
    on pairs."""
    illegible = equal = agree = decided = 0
    for j in range(len(step)):
        label = crowd.label(strength_a[j], strength_b[j], scale,
                            crowd_lib.pair_rng(seed, "generator-crowd", attribute, j))
        if label is None:
            illegible += 1
        elif label["target"] == 0.5:
            equal += 1
        else:
            decided += 1
            agree += (label["target"] == 1.0) == (step[j] > 0)
    count = len(step)
    # What the measured difference adds to the requested step, per image: z's share (and the
    # generator's error) in the attribute's scale units, against a fine step of 0.03-0.15.
    residual = (np.asarray(strength_a) - np.asarray(strength_b)) - np.asarray(step)
    spread = (float(np.nanstd(residual) / np.sqrt(2) / scale)
              if np.isfinite(residual).sum() > 2 else float("nan"))
    return dict(illegible_rate=illegible / count, equal_rate=equal / count,
                pair_agreement=agree / decided if decided else float("nan"),
                measured_spread=spread)


def real_fine_pair_rates(strengths, attribute, k, count, seed):
    """{real_equal_rate, real_illegible_rate}: the crowd on fine pairs of real images (as
    make_synthetic pairs them: |difference| in the fine range), the reference of the
    generated pairs' equal rate."""
    scale = attributes.BY_NAME[attribute].scale
    rng = crowd_lib.pair_rng(seed, "generator-real-pairs", attribute)
    chosen = pairs_lib.fine_pairs(np.asarray(strengths[:, k], np.float64), scale, count, rng)
    if not len(chosen):
        return {}
    crowd = crowd_lib.Crowd()
    labels = [crowd.label(strengths[a, k], strengths[b, k], scale,
                          crowd_lib.pair_rng(seed, "generator-real-crowd", attribute, j))
              for j, (a, b) in enumerate(chosen)]
    return dict(real_equal_rate=float(np.mean([x is not None and x["target"] == 0.5
                                               for x in labels])),
                real_illegible_rate=float(np.mean([x is None for x in labels])))


def evaluate_generator(decoder, info, meta, *, sweep_steps=9, sweep_samples=16, pairs=400,
                       seed=0, batch_size=64, real_images=None, real_strengths=None):
    """The generator's figures (module docstring) as a dict. real_images: (N, S, S, 3) in
    [0, 1], the reference of the sharpness figure; real_strengths: (N, strengths) measured on
    real images, the reference of the equal rate (the crowd on their fine pairs)."""
    measurable = meta.get("dataset") == "synthetic"
    crowd = crowd_lib.Crowd()
    out = {"attributes": {}, "measured": measurable,
           "images_per_second": sampling_speed(decoder, len(info["attributes"]),
                                               info["z_size"], batch_size)}
    if real_images is not None and len(real_images):
        rng = np.random.default_rng([seed, 19])
        prior = decode_images(decoder, _base(info, rng, len(real_images)),
                              rng.normal(size=(len(real_images), info["z_size"])), batch_size)
        out.update(high_frequency_energy=high_frequency_energy(prior),
                   real_high_frequency_energy=high_frequency_energy(real_images))
        out["sharpness"] = out["high_frequency_energy"] / out["real_high_frequency_energy"]
    for attribute in info["attributes"]:
        rng = crowd_lib.pair_rng(seed, "generator-eval", attribute)
        requested, images = sweep(decoder, info, attribute, sweep_steps, sweep_samples, rng,
                                  batch_size)
        entry = {"sweep_range": [float(requested.min()), float(requested.max())],
                 "sweep_change": float(np.mean(np.abs(images[:, -1] - images[:, 0])))}
        if measurable and attribute in attributes.BY_NAME:
            k = list(meta["strength_names"]).index(attribute)
            flat = images.reshape((-1,) + images.shape[2:])
            measured = measure_all(flat)[:, k]
            ok = np.isfinite(measured)
            within = [stats.spearmanr(r[m], s[m]).statistic for r, s, m in
                      zip(requested, measured.reshape(requested.shape),
                          ok.reshape(requested.shape)) if m.sum() > 2]
            entry.update(
                sweep_spearman=float(stats.spearmanr(requested.ravel()[ok],
                                                     measured[ok]).statistic)
                if ok.sum() > 2 else float("nan"),
                sweep_spearman_within=float(np.nanmean(within)) if within else float("nan"),
                sweep_unreadable=float(1 - ok.mean()))
            scale = attributes.BY_NAME[attribute].scale
            entry["pairs"] = pairs
            for prefix, same_z in (("", False), ("same_z_", True)):
                step, image_a, image_b = step_pairs(decoder, info, attribute, pairs, rng,
                                                    batch_size, same_z=same_z)
                figures = _crowd_figures(crowd, seed, attribute, step,
                                         measure_all(image_a)[:, k],
                                         measure_all(image_b)[:, k], scale)
                entry.update({prefix + key: value for key, value in figures.items()})
            if real_strengths is not None:
                entry.update(real_fine_pair_rates(np.asarray(real_strengths), attribute, k,
                                                  pairs, seed))
        out["attributes"][attribute] = entry
    return out


def add_reconstruction_figures(result, meta, real, reconstructions):
    """Per measured attribute of `result`: how well its held-out reconstructions (z from q's
    mean) keep each image's strength (Spearman between the two measurements) and how often
    the strength is unreadable on a reconstruction of an image where it is readable. It
    tells an attribute the decoder cannot draw from one its prior z cannot reach."""
    if meta.get("dataset") != "synthetic" or not len(real):
        return result
    names = list(meta["strength_names"])
    before, after = measure_all(real), measure_all(reconstructions)
    for name, entry in result["attributes"].items():
        if name not in attributes.BY_NAME or name not in names:
            continue
        k = names.index(name)
        readable = np.isfinite(before[:, k])
        both = readable & np.isfinite(after[:, k])
        entry.update(reconstruction_spearman=float(stats.spearmanr(
            before[both, k], after[both, k]).statistic) if both.sum() > 2 else float("nan"),
            reconstruction_unreadable=float(1 - both.sum() / max(readable.sum(), 1)))
    return result


def write_sweep_sheet(decoder, info, path, attributes=None, steps=7, seed=0, scale=2):
    """A PNG contact sheet: one row per attribute, its strength from low to high (left to
    right) with one z and the other strengths fixed (at their means); nearest-neighbour
    enlarged `scale` times."""
    names = list(attributes or info["attributes"])
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(1, info["z_size"]))
    low, high = _ranges(info)
    rows = []
    for name in names:
        k = info["attributes"].index(name)
        y = np.repeat(np.asarray(info["strength_mean"], np.float64)[None], steps, axis=0)
        y[:, k] = np.linspace(low[k], high[k], steps)
        images = decode_images(decoder, y, np.repeat(z, steps, axis=0))
        rows.append(np.concatenate(list(images), axis=1))
    sheet = np.round(np.concatenate(rows, axis=0) * 255).astype(np.uint8)
    sheet = sheet.repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(sheet).save(path)
    return names


def summary_line(result):
    parts = []
    for name, entry in result["attributes"].items():
        if "sweep_spearman" in entry:
            parts.append(f"{name} rho {entry['sweep_spearman']:.2f} agree "
                         f"{100 * entry['pair_agreement']:.0f}% illegible "
                         f"{100 * entry['illegible_rate']:.0f}%")
        elif len(parts) < 8:
            parts.append(f"{name} change {entry['sweep_change']:.3f}")
    fit = (f"held-out -ELBO {result['heldout_negative_elbo']:.1f} nats, reconstruction MSE "
           f"{result['heldout_reconstruction_mse']:.4f}, " if "heldout_negative_elbo" in result
           else f"{result.get('kind', 'generator')} (no fit), ")
    return f"generator: {fit}{result['images_per_second']:.0f} images/s; " + "; ".join(parts)


def sampling_speed(decoder, y_size, z_size, batch_size=64, repeats=5):
    """Generated images per second (batches of batch_size, after one warm-up batch)."""
    y = np.zeros((batch_size, y_size), np.float32)
    z = np.random.default_rng(0).normal(size=(batch_size, z_size)).astype(np.float32)
    fn = tf.function(lambda y, z: decoder([y, z], training=False)[0])
    fn(y, z)
    started = time.perf_counter()
    for _ in range(repeats):
        np.asarray(fn(y, z))
    return batch_size * repeats / (time.perf_counter() - started)
