"""Reports: tables (markdown and CSV), the one mean ± std rule, confidence intervals, JSON
files and file hashes (a study's provenance lines: evaluation.studies)."""
import hashlib
import json
import math

import numpy as np
import tensorflow as tf
from scipy import stats



def write_json(path, value):
    """Written beside, then renamed: a kill never leaves half a file."""
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(json.dumps(value, indent=2, sort_keys=True, default=_plain))
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


_HASHES = {}  # (path, size, mtime) -> sha256: a study hashes its trunk once, not per cell


def file_sha256(path):
    stat = tf.io.gfile.stat(path)
    key = (path, stat.length, stat.mtime_nsec)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with tf.io.gfile.GFile(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def finite(values):
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values, scale=100.0, digits=2):
    """The one rule for a figure over seeds: ('mean ± std', mean, std) of the finite values
    times `scale` (fractions -> percent), std with ddof 1; one value gives 'mean' and std NaN,
    none 'n/a'."""
    values = [scale * v for v in finite(values)]
    if not values:
        return "n/a", float("nan"), float("nan")
    mean = float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.{digits}f}", mean, float("nan")
    std = float(np.std(values, ddof=1))
    return f"{mean:.{digits}f} ± {std:.{digits}f}", mean, std


def seed_interval(values, level=0.95):
    """(low, high) Student-t interval of the mean over seeds; (nan, nan) below two values."""
    values = finite(values)
    if len(values) < 2:
        return float("nan"), float("nan")
    mean, sem = float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))
    half = float(stats.t.ppf((1 + level) / 2, len(values) - 1)) * sem
    return mean - half, mean + half


def accuracy_interval(accuracy, pairs, level=0.95):
    """(low, high) Wilson interval of an accuracy measured on `pairs` independent pairs."""
    if not pairs or not math.isfinite(accuracy):
        return float("nan"), float("nan")
    z = float(stats.norm.ppf((1 + level) / 2))
    centre = (accuracy + z * z / (2 * pairs)) / (1 + z * z / pairs)
    half = z * math.sqrt(accuracy * (1 - accuracy) / pairs + z * z / (4 * pairs * pairs)) / (
        1 + z * z / pairs)
    return centre - half, centre + half


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_markdown_and_csv(path_prefix, header, rows, csv_header=None, csv_rows=None,
                           preamble=()):
    """Writes <prefix>.md (the preamble lines, then a markdown table) and <prefix>.csv;
    returns the markdown."""
    md = list(preamble) + ([""] if preamble else []) + markdown_table(header, rows)
    csv = [",".join(csv_header or header)] + [",".join(r) for r in (csv_rows or rows)]
    for suffix, lines in ((".md", md), (".csv", csv)):
        with tf.io.gfile.GFile(path_prefix + suffix, "w") as f:
            f.write("\n".join(lines) + "\n")
    return "\n".join(md)


def write_table(rows, path_prefix, columns=("accuracy", "truth_accuracy")):
    """Per-attribute rows and their mean, as <prefix>.md (paper-style) and <prefix>.csv."""
    columns = [c for c in columns if any(c in r for r in rows)]
    means = {c: float(np.nanmean([r.get(c, np.nan) for r in rows])) for c in columns}
    table = [[label] + [f"{100 * values[c]:.2f}" if c in values else "" for c in columns]
             for label, values in [(r["attribute"], r) for r in rows] + [("mean", means)]]
    return write_markdown_and_csv(path_prefix, ["attribute"] + columns, table)
