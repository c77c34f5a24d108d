"""The linear probe of a trunk: how well a ridge regression on its frozen features reads each
attribute's strength (Spearman correlation on held-out images), beside a random trunk's."""
import keras
import numpy as np
import tensorflow as tf
from scipy import stats

from relattr_tf.data import images as images_lib, schema

RIDGE_CANDIDATES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def trunk_features(trunk, store, batch_size, pooled_layers=()):
    """[flattened trunk output] + [each of `pooled_layers`' output averaged over positions],
    float64, of every image of an ImageStore, in one pass over the images."""
    network = keras.Model(trunk.inputs, [trunk.output] +
                          [trunk.get_layer(name).output for name in pooled_layers])
    out = [[] for _ in range(1 + len(pooled_layers))]
    for start in range(0, store.count, batch_size):
        rows = tf.range(start, min(start + batch_size, store.count), dtype=tf.int64)
        images = tf.cast(store.images(rows), tf.float32) / 255.0
        features = network(images, training=False)
        features = [np.asarray(f, np.float64) for f in
                    (features if isinstance(features, (list, tuple)) else [features])]
        out[0].append(features[0].reshape(len(rows), -1))
        for part, f in zip(out[1:], features[1:]):
            part.append(f.mean(axis=(1, 2)))
    return [np.concatenate(part) for part in out]


def ridge_fit(x, y, alpha):
    """Weights of ridge regression on standardised x (intercept by centring)."""
    gram = x.T @ x / len(x) + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ (y - y.mean()) / len(x))


def probe_attribute(fit_x, fit_y, test_x, test_y):
    """Spearman correlation on the test images of a ridge probe whose penalty is chosen on a
    fifth of the fitting images; NaN strengths (unreadable) are left out. (rho, alpha)."""
    fit_ok, test_ok = np.isfinite(fit_y), np.isfinite(test_y)
    x, y = fit_x[fit_ok], fit_y[fit_ok]
    held = np.arange(len(x)) % 5 == 0

    def score(alpha, train_rows, eval_x, eval_y):
        w = ridge_fit(x[train_rows], y[train_rows], alpha)
        return stats.spearmanr(eval_x @ w, eval_y).statistic

    alpha = max(RIDGE_CANDIDATES, key=lambda a: np.nan_to_num(
        score(a, ~held, x[held], y[held]), nan=-1.0))
    return float(score(alpha, np.ones(len(x), bool), test_x[test_ok], test_y[test_ok])), alpha


def _probe_all(fit_x, test_x, stores, names):
    """{attribute: (rho, ridge)} of a probe on features of the fitting and test tables."""
    mean, std = fit_x.mean(0), fit_x.std(0) + 1e-6
    fit_x, test_x = (fit_x - mean) / std, (test_x - mean) / std
    columns = range(min(len(names), stores[0].strengths.shape[1]))
    return {names[c]: probe_attribute(fit_x, stores[0].strengths[:, c], test_x,
                                      stores[1].strengths[:, c]) for c in columns}


def linear_probe(trunk, random_trunk, data_dir, tables, image_size, batch_size=64,
                 blocks=()):
    """{attributes: {name: {spearman, spearman_random_trunk, ridge}}, mean, mean_random,
    blocks: {layer: {name: spearman}}}: the probe on the trunk's output, on a random trunk's,
    and, for each layer named in `blocks`, on the trunk's output there averaged over positions
    (where along the trunk an attribute stops being read)."""
    meta = schema.read_metadata(data_dir)
    fit_table, test_table = tables
    stores = [images_lib.ImageStore(data_dir, [t], image_size, meta=meta) for t in tables]
    names = meta.get("strength_names") or meta["attributes"]
    out, by_block = {}, {}
    for key, network, layers in (("spearman", trunk, tuple(blocks)),
                                 ("spearman_random_trunk", random_trunk, ())):
        fit, test = (trunk_features(network, s, batch_size, layers) for s in stores)
        for name, (rho, alpha) in _probe_all(fit[0], test[0], stores, names).items():
            out.setdefault(name, {})[key] = rho
            out[name][f"ridge_{key}"] = alpha
        for layer, fit_x, test_x in zip(layers, fit[1:], test[1:]):
            by_block[layer] = {name: rho for name, (rho, _) in
                               _probe_all(fit_x, test_x, stores, names).items()}
    return dict(attributes=out, fit_table=fit_table, test_table=test_table, blocks=by_block,
                mean=float(np.mean([v["spearman"] for v in out.values()])),
                mean_random_trunk=float(np.mean([v["spearman_random_trunk"]
                                                 for v in out.values()])))
