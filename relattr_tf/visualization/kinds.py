"""The pictures of `python -m relattr_tf.visualize`, one function per --kind (ATTIC's `pairs`
in generated_pairs.py).

Each returns (sheets, figures): {name: (uint8 contact sheet, description)} and a dict of what
was measured, for the command to save as PNG, to TensorBoard and as <kind>.json.
"""
import dataclasses
import os

import numpy as np
from scipy import stats

from relattr_tf.artifacts import generator as generator_artifact, pair_model
from relattr_tf.data import pipeline, schema
from relattr_tf.data.synthetic import attributes as synthetic_attributes
from relattr_tf.evaluation import generator as generator_eval, pairs as pair_evaluation
from relattr_tf.models import boxes as box_geometry
from relattr_tf.visualization import maps, sheets

KINDS = ("saliency", "attention", "boxes", "sweep", "generators", "pairs")


@dataclasses.dataclass(frozen=True)
class Options:
    model_dir: str
    data_dir: str = ""         # default: the one the model trained on
    attribute: str = ""        # default: the model's
    split: str = ""            # default: the model's first evaluation split
    count: int = 8             # pairs / images / sweeps shown
    measure_pairs: int = 200   # pairs the saliency and attention shares are measured over
    smoothgrad_samples: int = 0
    top_channels: int = 4
    steps: int = 7
    seed: int = 0
    compare: tuple = ()        # generators: more generator model_dirs beside model_dir's


def relation(target):
    return {1.0: "a>b", 0.0: "a<b", 0.5: "a=b"}.get(float(target), "?")


# --------------------------------------------------------------------------- test pairs
@dataclasses.dataclass
class Pairs:
    images_a: np.ndarray
    images_b: np.ndarray
    targets: np.ndarray
    boxes_a: np.ndarray
    boxes_b: np.ndarray

    def take(self, count):
        return Pairs(*(v[:count] for v in dataclasses.astuple(self)))


def data_of(config, options):
    """(data_dir, attribute, split): the options', else the model's own (its first evaluation
    split)."""
    return (options.data_dir or config.data.data_dir,
            options.attribute or config.family.attribute,
            options.split or config.family.eval_split[0])


def split_pairs(config, options):
    """The split's non-equal pairs in a seeded random order (at most measure_pairs), as float
    images at the model's size with the subject boxes (-1 when unknown)."""
    data_dir, attribute, split = data_of(config, options)
    meta = schema.read_metadata(data_dir)
    store = pipeline.image_store(meta, data_dir, attribute, split, pipeline.InputConfig(
        image_size=config.data.image_size, image_memory_mb=config.data.image_memory_mb))
    pairs = pipeline.pair_rows(pipeline.read_pairs(meta, data_dir, attribute, split),
                               store, f"{attribute}/{split}")
    unequal = np.flatnonzero(pairs[schema.TARGET] != 0.5)
    if not len(unequal):
        raise ValueError(f"{data_dir}: {attribute}/{split} has no pair that is not equal")
    chosen = np.random.default_rng(options.seed).permutation(unequal)[
        :max(options.measure_pairs, options.count)]
    rows_a, rows_b = pairs["row_a"][chosen], pairs["row_b"][chosen]
    image = lambda rows: store.images(rows).numpy().astype(np.float32) / 255.0
    return Pairs(image(rows_a), image(rows_b), pairs[schema.TARGET][chosen],
                 store.boxes[rows_a], store.boxes[rows_b])


def _batches(pairs, size=32):
    for start in range(0, len(pairs.targets), size):
        yield Pairs(*(v[start:start + size] for v in dataclasses.astuple(pairs)))


def _known_box(box):
    return [(box, sheets.GREEN)] if box[0] >= 0 else []


def _share_figures(shares, areas, what):
    if not len(shares):
        return {"images_with_box": 0, "note": f"the data has no subject boxes to measure "
                                              f"{what} against"}
    return dict(images_with_box=int(len(shares)), mass_in_box=float(shares.mean()),
                box_area=float(areas.mean()),
                mass_over_area=float(shares.mean() / max(areas.mean(), 1e-9)))


def _box_share_figures(pairs, options, maps_of, what):
    """(figures, extras): the share inside the subject's box of the maps maps_of(batch) ->
    (maps_a, maps_b, extra) over the first measure_pairs pairs, and each batch's extra."""
    shares, areas, extras = [], [], []
    for batch in _batches(pairs.take(options.measure_pairs)):
        map_a, map_b, extra = maps_of(batch)
        share, area = maps.mass_inside(np.concatenate([map_a, map_b]),
                                       np.concatenate([batch.boxes_a, batch.boxes_b]))
        shares.append(share)
        areas.append(area)
        extras.append(extra)
    figures = _share_figures(np.concatenate(shares), np.concatenate(areas), what)
    figures["pairs"] = int(min(len(pairs.targets), options.measure_pairs))
    return figures, extras


def _p_of(parts, pairs):
    return np.asarray(parts.network((pairs.images_a, pairs.images_b), training=False)).ravel()


# --------------------------------------------------------------------------- kinds
def saliency(config, parts, options):
    pairs = split_pairs(config, options)
    saliency_of = lambda batch: maps.pair_saliency(parts, batch.images_a, batch.images_b,
                                                   options.smoothgrad_samples, seed=options.seed)
    figures, _ = _box_share_figures(pairs, options, lambda b: (*saliency_of(b), None),
                                    "saliency")
    batch = pairs.take(options.count)
    saliency_a, saliency_b = saliency_of(batch)
    p = _p_of(parts, batch)
    rows = []
    for i in range(len(batch.targets)):
        row = [sheets.tile(batch.images_a[i], f"a  t {relation(batch.targets[i])}"), None,
               sheets.tile(batch.images_b[i], f"b  p(a>b) {p[i]:.2f}"), None]
        for column, image, heat, box in ((1, batch.images_a[i], saliency_a[i], batch.boxes_a[i]),
                                         (3, batch.images_b[i], saliency_b[i], batch.boxes_b[i])):
            share = maps.mass_inside([heat], [box])[0]
            caption = f"{100 * share[0]:.0f}% in box" if len(share) else "saliency"
            row[column] = sheets.tile(sheets.heat_overlay(image, heat), caption, _known_box(box))
        rows.append(row)
    figures["smoothgrad_samples"] = options.smoothgrad_samples
    title = (f"saliency |d logit / d pixel| of {config.model} on {pairs_what(config, options)}; "
             f"green: the subject's box")
    return {"saliency": (sheets.sheet(rows, title), title)}, figures


def attention(config, parts, options):
    if parts.comparator is None:
        raise ValueError(f"{options.model_dir}: --kind=attention needs a DACRL model, this is "
                         f"{config.model}")
    pairs = split_pairs(config, options)
    size = config.data.image_size

    def attended(batch):  # the maps at the image's size, and the weights
        weights, features = maps.attention(parts, batch.images_a, batch.images_b)
        map_a, map_b = (maps.upsample(m, size) for m in maps.attended_maps(weights, features))
        return map_a, map_b, weights
    figures, all_weights = _box_share_figures(pairs, options, attended, "attention")
    shown = pairs.take(options.count)
    weights, features = maps.attention(parts, shown.images_a, shown.images_b)
    map_a, map_b = maps.attended_maps(weights, features)
    channels = features.shape[-1] // 2
    p = _p_of(parts, shown)
    rows = []
    for i in range(len(shown.targets)):
        row = [sheets.tile(shown.images_a[i], f"a  t {relation(shown.targets[i])}"),
               sheets.tile(shown.images_b[i], f"b  p(a>b) {p[i]:.2f}"),
               sheets.tile(sheets.heat_overlay(shown.images_a[i], map_a[i]), "a: sum w*R",
                           _known_box(shown.boxes_a[i])),
               sheets.tile(sheets.heat_overlay(shown.images_b[i], map_b[i]), "b: sum w*R",
                           _known_box(shown.boxes_b[i]))]
        for c in np.argsort(-weights[i])[:options.top_channels]:
            side = "a" if c < channels else "b"
            image = shown.images_a[i] if side == "a" else shown.images_b[i]
            silent = " (all 0)" if features[i, ..., c].max() <= 0 else ""
            row.append(sheets.tile(sheets.heat_overlay(image, features[i, ..., c]),
                                   f"{side} ch {c % channels} w {weights[i, c]:.2f}{silent}"))
        rows.append(row)
    every = np.concatenate(all_weights)
    figures.update(feature_map_size=int(features.shape[1]),
                   channels_per_image=int(channels), weight_mean=float(every.mean()),
                   weight_min=float(every.min()), weight_max=float(every.max()),
                   weight_std_within_pair=float(every.std(axis=1).mean()),
                   weight_share_on_a=float((every[:, :channels].sum(1) / every.sum(1)).mean()))
    title = (f"DACRL channel attention on {pairs_what(config, options)}: the attention-weighted "
             f"feature maps of each image, then the {options.top_channels} channels weighted "
             f"most ({features.shape[1]}x{features.shape[2]} maps)")
    return {"attention": (sheets.sheet(rows, title), title)}, figures


def boxes(config, parts, options):
    if parts.localizer is None:
        raise ValueError(f"{options.model_dir}: --kind=boxes needs a DeepSTN model (or an "
                         f"ATTIC run's DeepSTN ranker), this is {config.model}")
    data_dir, attribute, split = data_of(config, options)
    meta = schema.read_metadata(data_dir)
    input_config = pipeline.InputConfig(image_size=config.data.image_size,
                                        image_memory_mb=config.data.image_memory_mb)
    store = pipeline.image_store(meta, data_dir, attribute, split, input_config)
    rows = np.random.default_rng(options.seed).permutation(store.count)[:options.count]
    images = store.images(rows).numpy().astype(np.float32) / 255.0
    predicted = box_geometry.box_corners(parts.localizer(images, training=False))
    scores = np.asarray(parts.scorer(images, training=False)).ravel()
    tiles = []
    for image, box, truth, score in zip(images, predicted, store.boxes[rows], scores):
        tiles.append(sheets.tile(image, f"score {score:.2f}",
                                 [(np.clip(box, 0, 1), sheets.RED)] + _known_box(truth)))
    per_row = 8
    grid = [tiles[i:i + per_row] for i in range(0, len(tiles), per_row)]
    figures = pair_evaluation.box_coverage(
        pair_model.load_exported(options.model_dir), meta, data_dir, attribute, split,
        config.data.image_size, image_memory_mb=config.data.image_memory_mb,
        floor_scale=config.family.box_scale_init) or {
        "note": "the data has no subject boxes to measure the predicted ones against"}
    title = (f"DeepSTN's boxes ({config.model}, {attribute}) on {split} images of "
             f"{data_dir}: red predicted, green the subject")
    return {"boxes": (sheets.sheet(grid, title), title)}, figures


def sweep(config, options):
    decoder, info = generator_artifact.load_generator(
        os.path.join(options.model_dir, generator_artifact.GENERATOR_DIR))
    names = [options.attribute] if options.attribute else list(info["attributes"])
    unknown = [n for n in names if n not in info["attributes"]]
    if unknown:
        raise ValueError(f"--attribute={unknown[0]}: the generator in {options.model_dir} knows "
                         f"{', '.join(info['attributes'])}")
    try:  # measured on the pixels where the generator learned the benchmark's attributes
        meta = schema.read_metadata(options.data_dir or config.data.data_dir)
    except (FileNotFoundError, ValueError):
        if options.data_dir:
            raise
        meta = {}  # its training data is not here: the sweep is drawn, not measured
    out, figures = {}, {}
    for name in names:
        rng = np.random.default_rng([options.seed, info["attributes"].index(name)])
        requested, images = generator_eval.sweep(decoder, info, name, options.steps,
                                                 options.count, rng)
        measured = None
        if meta.get("dataset") == "synthetic" and name in synthetic_attributes.BY_NAME:
            k = list(meta["strength_names"]).index(name)
            measured = generator_eval.measure_all(
                images.reshape((-1,) + images.shape[2:]))[:, k].reshape(requested.shape)
            within = [stats.spearmanr(r[np.isfinite(m)], m[np.isfinite(m)]).statistic
                      for r, m in zip(requested, measured) if np.isfinite(m).sum() > 2]
            figures[name] = dict(spearman_within_sweep=float(np.nanmean(within))
                                 if within else float("nan"),
                                 unreadable=float(np.mean(~np.isfinite(measured))))
        rows = []
        for s in range(len(images)):
            rows.append([sheets.tile(images[s, j], f"{requested[s, j]:.3g}" + (
                f" -> {measured[s, j]:.3g}" if measured is not None else ""))
                for j in range(options.steps)])
        title = (f"CVAE sweep of {name}: asked-for strength left to right" +
                 (" -> measured on the pixels" if measured is not None else "") +
                 "; each row one z and other strengths")
        out[f"sweep_{name}"] = (sheets.sheet(rows, title), title)
    return out, figures


def generators(config, options):
    """Real images of the generator's table (its validation part) in the first row and, for
    each generator (model_dir's, then --compare's), a row drawn from the same strengths with
    a fresh prior z, so rows differ by the generator alone."""
    from relattr_tf.training import task as task_lib
    if options.data_dir:
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, data_dir=options.data_dir))
    task = task_lib.make_task(config)
    meta = schema.read_metadata(config.data.data_dir)
    real, strengths = task.validation_examples(meta, options.count)
    names = list(meta["strength_names"])[:strengths.shape[1]]
    rows, labels, figures = [[sheets.tile(image) for image in real]], ["real"], {}
    for model_dir in (options.model_dir,) + tuple(options.compare):
        decoder, info = generator_artifact.load_generator(
            os.path.join(model_dir, generator_artifact.GENERATOR_DIR))
        missing = [a for a in info["attributes"] if a not in names]
        if missing:
            raise ValueError(f"{model_dir}: its generator asks for {missing[0]}, which "
                             f"{config.data.data_dir} does not measure")
        y = strengths[:, [names.index(a) for a in info["attributes"]]]
        y = np.where(np.isnan(y), np.asarray(info["strength_mean"])[None], y)  # NaN: the mean
        rng = np.random.default_rng([options.seed, len(labels)])
        images = generator_artifact.decode_images(
            decoder, y, rng.normal(size=(len(y), info["z_size"])))
        label = info["kind"] if info["kind"] == "oracle" else info.get("model", "cvae")
        label += ", background reads y" if info.get("background_y") else ""
        rows.append([sheets.tile(image) for image in images])
        labels.append(f"{label}\n({os.path.basename(os.path.normpath(model_dir))})")
        figures[model_dir] = dict(generator=label, kind=info["kind"])
    title = ("real images, then each generator's picture for the same strengths (a prior z "
             "each); one column per strength vector")
    return {"generators": (sheets.sheet(rows, title, row_labels=labels), title)}, figures


def pairs_what(config, options):
    data_dir, attribute, split = data_of(config, options)
    return f"{attribute}/{split} of {data_dir}"
