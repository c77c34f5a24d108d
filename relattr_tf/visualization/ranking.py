"""Ranking a user's own images by a trained model's attribute.

Images are read with Pillow (any format it reads; EXIF orientation applied), converted to RGB
and resized to the model's training size as training resizes (antialiased bilinear, the aspect
ratio not kept). Files Pillow cannot read are skipped and listed with the reason.

Score models (RankNet, DeepSTN, ATTIC's ranker) rank by their score v. DACRL only compares
pairs, so its comparisons are aggregated: every ordered pair (a, b) of up to
`all_pairs_limit` images (otherwise each image against `comparisons` random others, in both
orders) gives p(a, b); the pair's preference q = (p(a, b) + 1 - p(b, a)) / 2 is fitted by a
Bradley-Terry model, P(i over j) = sigmoid(s_i - s_j), by maximum likelihood with the soft
targets q (and a weak Gaussian prior on s that fixes the scale's offset). Reported with it:
how consistent the comparisons are (swap consistency |p(a, b) - (1 - p(b, a))|, how often the
fitted order agrees with each pair's preference, and the share of cyclic triads a > b > c > a
among sampled triads of compared images).
Pillow applies a file's EXIF orientation (training's decoder does not: converted data sets
store upright pixels).
"""
import csv
import glob
import json
import os

import numpy as np
from PIL import Image, ImageOps
from scipy import optimize

from relattr_tf.artifacts.pair_model import load_exported, pair_model_config
from relattr_tf.data.images import resize_to_uint8
from relattr_tf.visualization import sheets

PATTERN_CHARACTERS = "*?["


def find_images(spec):
    """The files of a folder (recursively) or of a glob pattern, sorted."""
    if os.path.isdir(spec):  # first: a folder's name may hold [ or *
        paths = [os.path.join(root, name) for root, _, names in os.walk(spec) for name in names]
    elif any(c in spec for c in PATTERN_CHARACTERS):
        paths = glob.glob(spec, recursive=True)
    else:
        raise FileNotFoundError(f"--images={spec}: neither a folder nor a glob pattern")
    paths = sorted(p for p in paths if os.path.isfile(p))
    if not paths:
        raise FileNotFoundError(f"--images={spec}: no files there")
    return paths


def to_rgb(image):
    """A Pillow image as 8-bit RGB. 16-bit greyscale (modes I;16*, and I holding values up to
    65535) keeps its high byte, as TensorFlow's PNG decoder and Pillow's 16-bit RGB do, rather
    than being clipped by Pillow's convert; wider integers are scaled by their maximum."""
    if image.mode.startswith("I"):
        pixels = np.asarray(image).astype(np.int64)
        top = int(pixels.max(initial=0))
        pixels = pixels >> 8 if top <= 65535 else pixels * 255 // top
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.convert("RGB")


def read_images(paths, image_size, progress_every=500):
    """(uint8 images (N, size, size, 3), the paths read, [(path, reason)] skipped)."""

    images, kept, skipped = [], [], []
    for count, path in enumerate(paths, start=1):
        try:
            with Image.open(path) as image:
                image.load()  # forces the full decode: a truncated file fails here
                pixels = np.asarray(to_rgb(ImageOps.exif_transpose(image)))
        except Exception as error:  # noqa: BLE001  every unreadable file is listed with why
            skipped.append((path, f"{type(error).__name__}: "
                                  f"{' '.join(str(error).split()) or 'unreadable'}"))
            continue
        images.append(resize_to_uint8(pixels, image_size).numpy())
        kept.append(path)
        if progress_every and count % progress_every == 0:
            print(f"read {count} of {len(paths)} files", flush=True)
    out = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return out, kept, skipped


def _batched(fn, images, batch_size=64):
    return np.concatenate([fn(np.asarray(images[i:i + batch_size], np.float32) / 255.0)
                           for i in range(0, len(images), batch_size)])


def sampled_pairs(count, comparisons, all_pairs_limit, seed=0):
    """Unordered pairs (i < j) to compare: all of them for up to all_pairs_limit images, else
    each image against `comparisons` random others (duplicates removed)."""
    if count <= all_pairs_limit:
        i, j = np.triu_indices(count, k=1)
        return np.stack([i, j], axis=1)
    rng = np.random.default_rng(seed)
    first = np.repeat(np.arange(count), comparisons)
    other = (first + rng.integers(1, count, size=len(first))) % count
    pairs = np.sort(np.stack([first, other], axis=1), axis=1)
    return np.unique(pairs, axis=0)


def bradley_terry(count, pairs, preference, prior=1e-3):
    """Strengths s (count,) maximising sum q log sigmoid(s_i - s_j) + (1 - q) log sigmoid(s_j -
    s_i) - prior / 2 |s|^2 over the pairs (i, j) with preference q = P(i over j)."""
    i, j = pairs[:, 0], pairs[:, 1]

    def loss_and_grad(s):
        d = s[i] - s[j]
        loss = np.sum(np.logaddexp(0, -d) * preference + np.logaddexp(0, d) * (1 - preference))
        residual = 1.0 / (1.0 + np.exp(-d)) - preference  # d loss / d d
        grad = np.bincount(i, residual, count) - np.bincount(j, residual, count)
        return loss + prior / 2 * s @ s, grad + prior * s

    fit = optimize.minimize(loss_and_grad, np.zeros(count), jac=True, method="L-BFGS-B")
    return fit.x


def cyclic_triads(pairs, preference, samples=5000, seed=0):
    """(share of cyclic triads a over b over c over a, how many distinct triads were drawn)
    among triads whose three pairs were compared and decided (q != 0.5), drawn `samples` times
    as a decided pair and a random image compared with both. (None, 0) when there is none."""
    beats = {}
    for (a, b), q in zip(pairs, preference):
        if q != 0.5:
            beats[(a, b)], beats[(b, a)] = q > 0.5, q < 0.5
    neighbours = {}
    for a, b in beats:
        neighbours.setdefault(a, set()).add(b)
    decided = [pair for pair in beats if pair[0] < pair[1]]
    if not decided:
        return None, 0
    rng = np.random.default_rng(seed)
    cyclic = total = 0
    seen = set()
    for k in rng.integers(0, len(decided), size=samples):
        a, b = decided[k]
        common = sorted(neighbours[a] & neighbours[b])
        if not common:
            continue
        c = common[rng.integers(len(common))]
        seen.add(frozenset((a, b, c)))
        total += 1
        cyclic += beats[(a, b)] == beats[(b, c)] == beats[(c, a)]
    return (cyclic / total if total else None), len(seen)


def score_images(model, images, comparisons=20, all_pairs_limit=200, seed=0):
    """(scores, details): one score per image, larger = more of the attribute."""
    if hasattr(model, "score"):
        scores = _batched(lambda x: model.score(image=x)["score"].numpy().ravel(), images)
        return scores, dict(method="score")
    if len(images) < 2:
        return np.zeros(len(images)), dict(method="bradley_terry", comparisons=0)
    features = _batched(lambda x: model.features(image=x)["features"].numpy(), images)
    pairs = sampled_pairs(len(images), comparisons, all_pairs_limit, seed)
    forward, backward = [], []
    for start in range(0, len(pairs), 256):
        a, b = features[pairs[start:start + 256, 0]], features[pairs[start:start + 256, 1]]
        forward.append(model.compare(features_a=a, features_b=b)["p"].numpy().ravel())
        backward.append(model.compare(features_a=b, features_b=a)["p"].numpy().ravel())
    forward, backward = np.concatenate(forward), np.concatenate(backward)
    preference = (forward + 1.0 - backward) / 2.0
    scores = bradley_terry(len(images), pairs, preference)
    d = scores[pairs[:, 0]] - scores[pairs[:, 1]]
    decided = preference != 0.5
    details = dict(
        method="bradley_terry", compared_pairs=int(len(pairs)),
        all_pairs=bool(len(images) <= all_pairs_limit),
        swap_inconsistency=float(np.mean(np.abs(forward - (1.0 - backward)))),
        swap_disagreement=float(np.mean((forward > 0.5) != (backward < 0.5))),
        order_agreement=float(np.mean((d[decided] > 0) == (preference[decided] > 0.5)))
        if decided.any() else float("nan"))
    details["cyclic_triads"], details["triads_sampled"] = cyclic_triads(pairs, preference,
                                                                         seed=seed)
    return scores, details


def write_outputs(out_dir, paths, scores, skipped, images, sheet_limit=100):
    """ranking.csv (file, rank, score; rank 1 shows the most), skipped.csv (file, reason) and
    ranking.png (the images in ranked order; every k-th when there are more than
    sheet_limit). Returns the file paths."""
    os.makedirs(out_dir, exist_ok=True)
    order = np.argsort(-scores, kind="stable")
    ranking = os.path.join(out_dir, "ranking.csv")
    with open(ranking, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["file", "rank", "score"])
        for rank, index in enumerate(order, start=1):
            out.writerow([paths[index], rank, f"{scores[index]:.6g}"])
    skipped_path = os.path.join(out_dir, "skipped.csv")
    with open(skipped_path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["file", "reason"])
        out.writerows(skipped)
    written = [ranking, skipped_path]
    if len(order):
        shown = np.unique(np.linspace(0, len(order) - 1, min(len(order), sheet_limit))
                          .round().astype(int))
        tiles = [sheets.tile(images[order[r]], f"#{r + 1}: {scores[order[r]]:.3g}",
                             size=sheets.TILE // 2 * 3 // 2) for r in shown]
        per_row = 10
        rows = [tiles[k:k + per_row] for k in range(0, len(tiles), per_row)]
        title = (f"{len(order)} images, most to least" +
                 (f" (every {len(order) / len(shown):.1f}th shown)"
                  if len(shown) < len(order) else ""))
        written.append(sheets.save(sheets.sheet(rows, title), out_dir, "ranking"))
    return written


def rank(model_dir, images_spec, out_dir, comparisons=20, all_pairs_limit=200, sheet_limit=100,
         seed=0):
    """Ranks the images; writes the outputs; returns ranking.json's content."""
    config = pair_model_config(model_dir)
    paths = find_images(images_spec)
    images, kept, skipped = read_images(paths, config.data.image_size)
    print(f"read {len(kept)} of {len(paths)} files ({len(skipped)} skipped, listed in "
          f"{os.path.join(out_dir, 'skipped.csv')})", flush=True)
    for path, reason in skipped[:5]:
        print(f"  skipped {path}: {reason}")
    if not kept:
        write_outputs(out_dir, kept, np.zeros(0), skipped, images, sheet_limit)
        raise ValueError(f"--images={images_spec}: none of its {len(paths)} files is an image "
                         f"Pillow reads (reasons in {os.path.join(out_dir, 'skipped.csv')})")
    scores, details = score_images(load_exported(model_dir), images, comparisons,
                                   all_pairs_limit, seed)
    written = write_outputs(out_dir, kept, scores, skipped, images, sheet_limit)
    summary = dict(details, model=config.model, model_dir=model_dir,
                   attribute=config.family.attribute, image_size=config.data.image_size,
                   images=len(kept), skipped=len(skipped), files=len(paths))
    with open(os.path.join(out_dir, "ranking.json"), "w") as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True))
    for path in written:
        print(f"wrote {path}")
    return summary


def summary_line(summary):
    line = (f"ranked {summary['images']} images by {summary['attribute']} with "
            f"{summary['model']} ({summary['method']})")
    if summary["method"] == "bradley_terry" and summary.get("compared_pairs"):
        triads = summary["cyclic_triads"]
        line += (f": {summary['compared_pairs']} pairs compared both ways; the fitted order "
                 f"agrees with {100 * summary['order_agreement']:.1f}% of the comparisons; "
                 f"(a, b) and (b, a) agree on "
                 f"{100 * (1 - summary['swap_disagreement']):.1f}% of pairs "
                 f"(mean |p(a,b) - (1 - p(b,a))| {summary['swap_inconsistency']:.3f})"
                 + (f"; cyclic triads {100 * triads:.1f}% (draws over "
                    f"{summary['triads_sampled']} triads)" if triads is not None else ""))
    return line
