"""Box geometry of a spatial transformer's theta: the region it samples, and its box form.

theta is the flattened 2 x 3 affine map from output coordinates to input coordinates, both in
[-1, 1]; a box transform is [[s, 0, s tx], [0, s, s ty]].
"""
import numpy as np
import tensorflow as tf


def box_corners(theta):
    """Transforms (flattened theta rows) -> [ymin, xmin, ymax, xmax] in [0, 1] of the region
    each samples: the image of the output square's corners (+-1, +-1) under theta."""
    theta = np.asarray(theta, np.float32).reshape(-1, 2, 3)
    corners = np.array([[-1, -1, 1], [-1, 1, 1], [1, -1, 1], [1, 1, 1]], np.float32).T
    points = (theta @ corners + 1) / 2  # (B, 2 (x, y), 4) in [0, 1]
    low, high = points.min(axis=2), points.max(axis=2)
    return np.stack([low[:, 1], low[:, 0], high[:, 1], high[:, 0]], axis=1)


def centred_corners(scale, count=1):
    """[ymin, xmin, ymax, xmax] rows of the centred box of `scale` (theta [[s, 0, 0],
    [0, s, 0]]): what an untrained localiser looks at."""
    half = scale / 2
    return np.tile([[0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half]], (count, 1))


def box_of(theta):
    """(s, tx, ty) of a box transform (flattened theta, a tensor); for an affine one, the mean
    scale of its diagonal and its centre divided by it."""
    scale = (theta[:, 0] + theta[:, 4]) / 2
    return tf.stack([scale, theta[:, 2] / scale, theta[:, 5] / scale], axis=1)


def iou(predicted, truth):
    """Intersection over union of [ymin, xmin, ymax, xmax] rows."""
    low = np.maximum(predicted[:, :2], truth[:, :2])
    high = np.minimum(predicted[:, 2:], truth[:, 2:])
    overlap = np.prod(np.clip(high - low, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return overlap / np.maximum(area(predicted) + area(truth) - overlap, 1e-9)


def contains_centre(predicted, truth):
    """Whether each predicted box contains the centre of its true box."""
    centre = (truth[:, :2] + truth[:, 2:]) / 2
    return np.all((centre >= predicted[:, :2]) & (centre <= predicted[:, 2:]), axis=1)
