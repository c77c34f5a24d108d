"""How latent strengths turn into measured ones: the monotone map an oracle generator needs to
draw a requested measured strength (models.oracle_renderer).

Given pictures drawn with uniform latents and their `measure`d strengths, each attribute's map
is the median measured strength at evenly spaced latents (a window of latents around each
knot), made strictly increasing so that it inverts.
"""
import numpy as np

from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES


def fit_knots(latents, measured, knots=21):
    """{attribute: [measured values ascending, latents]} from (N, 8) latents and measurements
    (NaN: unreadable, left out)."""
    grid = np.linspace(0.0, 1.0, knots)
    half = 0.5 / (knots - 1) + 0.02
    out = {}
    for k, name in enumerate(ATTRIBUTE_NAMES):
        medians = np.full(knots, np.nan)
        for i, g in enumerate(grid):
            near = (np.abs(latents[:, k] - g) <= half) & np.isfinite(measured[:, k])
            if near.any():
                medians[i] = np.median(measured[near, k])
        ok = np.isfinite(medians)
        values = np.interp(grid, grid[ok], medians[ok])
        step = 1e-4 * np.nanstd(measured[:, k])
        for i in range(1, knots):  # strictly increasing: an invertible map
            values[i] = max(values[i], values[i - 1] + step)
        out[name] = [values.tolist(), grid.tolist()]
    return out


def strength_statistics(measured):
    """What a generator artifact records of its training strengths (artifacts.generator)."""
    return dict(names=list(ATTRIBUTE_NAMES), mean=np.nanmean(measured, 0).tolist(),
                std=np.nanstd(measured, 0).tolist(), min=np.nanmin(measured, 0).tolist(),
                max=np.nanmax(measured, 0).tolist(),
                unknown_fraction=np.mean(~np.isfinite(measured), 0).tolist(),
                images=int(len(measured)))
