"""Choosing which images to pair: coarse (random, like Zap50K-1) and fine-grained (close in
strength, like Zap50K-2) pair sets. Strengths are the measured ones; unreadable images (NaN)
are still paired, the crowd then marks those pairs illegible and they are counted as rejected."""
import numpy as np

FINE_DIFFERENCE = (0.03, 0.15)  # range of |difference| in units of the attribute's scale


def coarse_pairs(num_images, count, rng):
    """`count` random ordered pairs (i, j), i != j, as an int array (count, 2)."""
    first = rng.integers(0, num_images, count)
    second = (first + rng.integers(1, num_images, count)) % num_images
    return np.stack([first, second], axis=1)


def fine_pairs(strengths, scale, count, rng, difference=FINE_DIFFERENCE):
    """Pairs whose strengths differ by a small amount, uniform in `difference` x scale.

    Each pair starts at a random readable image and takes the image whose strength is closest
    to start + a drawn difference; pairs outside the range are redrawn (fewer pairs come back
    only when the images are too sparse to give `count`).
    """
    readable = np.flatnonzero(np.isfinite(strengths))
    order = readable[np.argsort(strengths[readable], kind="stable")]
    if len(order) < 2:
        return np.zeros((0, 2), np.int64)
    values = strengths[order]
    low, high = difference[0] * scale, difference[1] * scale
    pairs, attempts = [], 0
    while len(pairs) < count and attempts < 20 * count:
        attempts += 1
        k = rng.integers(0, len(order))
        wanted = values[k] + rng.uniform(low, high) * rng.choice([-1.0, 1.0])
        m = int(np.clip(np.searchsorted(values, wanted), 0, len(order) - 1))
        if m > 0 and abs(values[m - 1] - wanted) < abs(values[m] - wanted):
            m -= 1
        if m != k and low <= abs(values[m] - values[k]) <= high:
            pairs.append((order[k], order[m]) if rng.uniform() < 0.5 else (order[m], order[k]))
    return np.asarray(pairs, np.int64).reshape(-1, 2)
