"""Pixel measurements of the benchmark's attributes: strength = measure(image).

Ground truth is measured on the rendered pixels, never read from the render parameters, so any
image (a generated one too) is judged by the same rules. A local attribute whose subject cannot be
found, or whose value is unreadable (tilt of a nearly round subject), measures NaN.
"""
import numpy as np
from scipy import ndimage

from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
MIN_SUBJECT_FRACTION = 0.003  # of the image area: 12 px at 64 x 64
MIN_TILT_ELONGATION = 1.25


def green_excess(image):
    """How much green dominates red and blue: positive only on the subject."""
    return image[..., 1] - np.maximum(image[..., 0], image[..., 2])


def subject_mask(image):
    """Boolean mask of the subject (largest green component), or None if it is not found."""
    excess = green_excess(image)
    peak = np.percentile(excess, 99.8)
    threshold = max(0.04, 0.3 * peak)
    labels, count = ndimage.label(excess > threshold)
    if count == 0:
        return None
    areas = ndimage.sum_labels(np.ones_like(excess), labels, index=np.arange(1, count + 1))
    mask = ndimage.binary_fill_holes(labels == (1 + int(np.argmax(areas))))
    if mask.sum() < MIN_SUBJECT_FRACTION * excess.size:
        return None
    return mask


def subject_box(image):
    """The subject's bounding box [ymin, xmin, ymax, xmax] as fractions of the image side, on
    pixel edges (a subject filling pixel rows 2..5 of 8 gives ymin 0.25, ymax 0.75), or None
    when no subject is found. Same rules as `measure`: uint8 or floats in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    mask = subject_mask(image)
    if mask is None:
        return None
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    return [float(rows.min() / height), float(cols.min() / width),
            float((rows.max() + 1) / height), float((cols.max() + 1) / width)]


def _principal_axes(mask):
    rows, cols = np.nonzero(mask)
    x, y = cols + 0.5, -(rows + 0.5)  # y axis pointing up, as the renderer's angles
    cov = np.cov(np.stack([x, y]))
    evals, evecs = np.linalg.eigh(cov)
    major = evecs[:, 1]
    elongation = float(np.sqrt(evals[1] / max(evals[0], 1e-9)))
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    angle = (angle + 90.0) % 180.0 - 90.0  # an axis, not a direction: fold into [-90, 90)
    return elongation, angle, x, y


def _radial_kurtosis(x, y):
    """E[r^4] / E[r^2]^2 of the whitened shape: 4/3 for any ellipse, more for pointed corners.

    Whitening removes size, elongation and tilt, so this reads the corners alone.
    """
    xy = np.stack([x - x.mean(), y - y.mean()])
    evals, evecs = np.linalg.eigh(np.cov(xy))
    white = (evecs.T @ xy) / np.sqrt(np.maximum(evals, 1e-9))[:, None]
    r2 = np.sum(white ** 2, axis=0)
    return float(np.mean(r2 ** 2) / np.mean(r2) ** 2)


def _stripes(image, mask):
    inner = ndimage.binary_erosion(mask, iterations=1)
    if inner.sum() < 8:
        inner = mask
    values = green_excess(image)[inner]
    return float(np.std(values) / max(np.mean(values), 1e-6))


def measure(image):
    """Strength vector (ordered as ATTRIBUTE_NAMES, float64, NaN = unreadable) of one image.

    image: H x W x 3 floats in [0, 1] (uint8 is accepted and rescaled).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    luma = image @ LUMA
    q25, q50, q75 = np.percentile(luma, [25, 50, 75])
    neutral = (image[..., 0] - image[..., 2]) / (image[..., 0] + image[..., 2] + 1e-6)
    values = {"brightness": q50, "contrast": q75 - q25, "warmth": float(np.median(neutral))}

    mask = subject_mask(image)
    if mask is None:
        values.update(size=np.nan, elongation=np.nan, pointy=np.nan, stripes=np.nan, tilt=np.nan)
    else:
        area = float(mask.sum())
        elongation, angle, x, y = _principal_axes(mask)
        values.update(
            size=np.sqrt(area) / np.sqrt(mask.size),
            elongation=elongation,
            pointy=_radial_kurtosis(x, y),
            stripes=_stripes(image, mask),
            tilt=angle if elongation >= MIN_TILT_ELONGATION else np.nan,
        )
    return np.array([values[name] for name in ATTRIBUTE_NAMES], np.float64)
