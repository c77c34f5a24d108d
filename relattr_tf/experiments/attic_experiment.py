"""ATTIC's experiment: the paper's baselines at an equal label budget n, its table and its
learning curve, on one data directory.

Per attribute and seed (a "cell", <model_dir>/<attribute>/seed-<s>/), every method's ranker
starts from the same pretrained state (the ranker ATTIC pretrains on n/2 real pairs) and trains
the same epochs on its own training set (--real_pairs is n; R = --rounds, T = n / (2 R)):

  Normal block (n labels each)
    real              n real pairs (nested draws: the n/2 are among them)
    real_plus         the n real pairs + n pseudo pairs: random pairs of the generator's
                      training images, labelled by their attribute strengths
    jitter            the n real pairs + a jittered copy of each (translation, scale,
                      rotation, contrast, colour), labels kept
    semantic_jitter   n/2 real + n/2 generated pairs changing one attribute by a fixed
                      policy (a fine-grained step, the rest fixed), labelled like ATTIC's
    attic             n/2 real + n/2 pairs from ATTIC's rounds (the active loop)
  Auto block (2n pairs, n labels): the n real pairs + n generated pairs labelled by their y
    (semantic_jitter: the policy's step; attic: y^A vs y^B of round 1's control, the one
    trained before any label was spent, on fresh q's)

Mini-batches draw every pair alike (each split weighted by its pair count), so a method's
training set is what the table says whatever the sizes of its parts.

The curve: after each round r (labels spent n/2 + r T), the accuracy of real (that many real
pairs), semantic_jitter and attic, and each one's gain over real at the same labels.
Outputs: <model_dir>/results_attic.md and .csv (methods x attributes, mean +- std over seeds),
learning_curve.csv and .png, and the curve as TensorBoard scalars under <model_dir>/tensorboard.
Every run is reused when it finished with the same settings, so a killed experiment continues.
"""
import csv
import dataclasses
import json
import os
import time

import numpy as np

from relattr_tf import active_loop
from relattr_tf.data import pipeline, schema, writer

NORMAL = ("real", "real_plus", "jitter", "semantic_jitter", "attic")
AUTO = ("real", "semantic_jitter", "attic")
CURVE = ("real", "semantic_jitter", "attic")
LABELS = {"real": "Real", "real_plus": "Real+", "jitter": "Jitter",
          "semantic_jitter": "Semantic Jitter", "attic": "ATTIC"}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One attribute and seed of the experiment."""
    config: object  # the ATTIC Config with this attribute and seed
    directory: str
    rounds: int
    command: str = ""

    @property
    def prefix(self):  # the data directory's appended splits of this experiment and cell
        experiment = os.path.dirname(os.path.dirname(os.path.normpath(self.directory)))
        return f"{active_loop.run_prefix(experiment)}-s{self.config.train.seed}"

    @property
    def n(self):
        return self.config.family.real_pairs

    @property
    def per_round(self):
        return self.n // (2 * self.rounds)


def _accuracy(results, split):
    return float(results[split]["accuracy"])


def _real_split(cell, count):
    net = cell.config.family
    base = net.train_split[0].partition(":")[0]
    name = f"{base}-n{count}-s{cell.config.train.seed}"
    writer.add_pair_subset(cell.config.data.data_dir, net.attribute, base, name, count,
                           seed=cell.config.train.seed, command=cell.command)
    return name


def _train_ranker(cell, name, real, extra=()):
    """A ranker from the pretrained state on the real splits and the extra (synthetic,
    pseudo, jittered) ones, every pair alike (--synthetic_weight scales the extra ones)."""
    from relattr_tf.training import run
    splits = active_loop.mixed_splits(cell.config, real, [s for s in extra if s])
    config = active_loop.ranker_config(cell.config, splits).with_values(
        warm_start=os.path.join(cell.directory, "attic", "pretrained_ranker"))
    results = run.train_or_reuse(config, os.path.join(cell.directory, name))
    return _accuracy(results, config.family.eval_split[0])


# --------------------------------------------------------------------------- synthetic pairs
def _generator(cell):
    from relattr_tf.training import cvae
    return cvae.load_generator(cell.config.family.generator_dir)


def _generator_attribute(cell):
    net = cell.config.family
    return net.generator_attribute or net.attribute


def _decode_pairs(decoder, info, y_a, y_b, z_a, z_b, image_size):
    from relattr_tf.training import cvae
    import tensorflow as tf
    images = []
    for y, z in ((y_a, z_a), (y_b, z_b)):
        out = cvae.decode_images(decoder, y, z)
        if out.shape[1] != image_size:
            out = tf.image.resize(out, (image_size, image_size)).numpy()
        images.append(out)
    return tuple(images)


def semantic_jitter_pairs(cell, count, key):
    """`count` pairs with the attribute alone changed by the policy's step; (images, y)."""
    from relattr_tf import generator_evaluation
    from relattr_tf.data.synthetic import crowd as crowd_lib
    decoder, info = _generator(cell)
    rng = crowd_lib.pair_rng(cell.config.train.seed, "semantic-jitter", key)
    y_a, y_b = generator_evaluation.step_strengths(info, _generator_attribute(cell), count, rng)
    z = rng.normal(size=(count, info["z_size"]))
    images = _decode_pairs(decoder, info, y_a, y_b, z, z, cell.config.data.image_size)
    return images, (y_a, y_b), info


def _package(cell, directory, images, y, info, name):
    from relattr_tf.labelling import package
    if not os.path.exists(os.path.join(directory, package.PAIRS_FILE)):
        package.write_package(directory, images, y, attribute=cell.config.family.attribute,
                              generator_attribute=_generator_attribute(cell),
                              attribute_names=info["attributes"], prefix=name)
    return directory


def _labelled(cell, directory, name, auto=False):
    """Labels a package (the simulated crowd, or y) into split `name` once; returns it."""
    from relattr_tf.labelling import package, simulated_crowd
    done = os.path.join(directory, "labels.json")
    if not os.path.exists(done):
        if auto:
            summary = package.auto_labels(directory, cell.config.data.data_dir, name,
                                          command=cell.command)
        else:
            answers = simulated_crowd.write_crowd_export(
                package.read(directory), os.path.join(directory, "crowd_export.json"),
                seed=cell.config.train.seed)
            net = cell.config.family
            summary = package.import_labels(answers, directory, cell.config.data.data_dir,
                                            name, min_agreement=net.min_agreement,
                                            min_confidence=net.min_confidence,
                                            command=cell.command)
        active_loop.write_json(done, summary)
    with open(done) as f:
        return name if json.load(f)["accepted"] else None


def _png(image):
    from relattr_tf.labelling.package import png_bytes
    return png_bytes(image)


def _table_images(data_dir, meta, tables):
    """{image id: (encoded bytes, strengths)} of image tables."""
    from relattr_tf.data.images import read_records
    out = {}
    for table in tables:
        entry = schema.image_table(meta, data_dir, table)
        for record in read_records(schema.shard_paths(data_dir, entry, f"image table {table}")):
            parsed = schema.decode_record(record.numpy())
            out[parsed[schema.ID]] = (parsed[schema.IMAGE], parsed[schema.STRENGTHS])
    return out


def real_plus_split(cell, count):
    """`count` pseudo pairs: random pairs of the generator's training images (their own data
    directory), labelled by their strengths; copied into the data directory once."""
    from relattr_tf.config import load_run_config
    data_dir, net = cell.config.data.data_dir, cell.config.family
    name = f"{cell.prefix}-{net.attribute}-realplus-n{count}"
    meta = schema.read_metadata(data_dir)
    if name in meta.get("splits", {}).get(net.attribute, {}):
        return name
    source = load_run_config(os.path.dirname(os.path.normpath(net.generator_dir)))
    source_meta = schema.read_metadata(source.data.data_dir)
    k = list(source_meta["strength_names"]).index(_generator_attribute(cell))
    images = _table_images(source.data.data_dir, source_meta, [source.family.image_table])
    ids = sorted(i for i, (_, s) in images.items() if len(s) > k and np.isfinite(s[k]))
    rng = np.random.default_rng([cell.config.train.seed, 11])
    chosen = rng.choice(len(ids), size=(count, 2), replace=len(ids) < 2 * count)
    used = sorted({ids[i] for pair in chosen for i in pair})
    records = [dict(image=images[i][0], image_id=f"{name}/{i}", source="real_plus")
               for i in used]
    pairs = []
    for a, b in chosen:
        strength_a, strength_b = images[ids[a]][1][k], images[ids[b]][1][k]
        target = 1.0 if strength_a > strength_b else 0.0 if strength_a < strength_b else 0.5
        pairs.append(dict(id_a=f"{name}/{ids[a]}", id_b=f"{name}/{ids[b]}",
                          attribute=net.attribute, target=target, source="real_plus",
                          split=name))
    writer.add_to_data_dir(data_dir, images=records, table=name, pairs=pairs,
                           command=cell.command)
    return name


def jitter(image, rng):
    """Low-level jitter of one uint8 image: translation, scale, rotation, contrast, colour."""
    from PIL import Image
    size = image.shape[0]
    picture = Image.fromarray(image)
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.06, 0.06, 2) * size
    picture = picture.rotate(angle, resample=Image.BILINEAR, translate=tuple(shift))
    if scale != 1.0:
        big = picture.resize((round(size * scale),) * 2, Image.BILINEAR)
        offset = (big.size[0] - size) // 2
        picture = big.crop((offset, offset, offset + size, offset + size)) if offset >= 0 else \
            big.resize((size, size), Image.BILINEAR)
    x = np.asarray(picture, np.float32) / 255.0
    x = (x - x.mean()) * rng.uniform(0.9, 1.1) + x.mean()  # contrast
    x = x * rng.uniform(0.95, 1.05, 3)  # colour
    return np.clip(x, 0.0, 1.0)


def jitter_split(cell, real_split):
    """A jittered copy of every pair of `real_split`, labels kept."""
    from relattr_tf.data.images import decode_to_uint8
    import tensorflow as tf
    data_dir, net = cell.config.data.data_dir, cell.config.family
    name = f"{real_split}-jitter"
    meta = schema.read_metadata(data_dir)
    if name in meta.get("splits", {}).get(net.attribute, {}):
        return name
    pairs = pipeline.read_pairs(meta, data_dir, net.attribute, real_split)
    tables = pipeline.image_tables_of(meta, data_dir, net.attribute, [real_split])
    images = _table_images(data_dir, meta, tables)
    rng = np.random.default_rng([cell.config.train.seed, 13])
    records, new_pairs = [], []
    for index, (a, b, target) in enumerate(zip(pairs[schema.ID_A], pairs[schema.ID_B],
                                               pairs[schema.TARGET])):
        ids = []
        for side, image_id in (("a", a.decode()), ("b", b.decode())):
            new_id = f"{name}/{index}{side}"
            pixels = decode_to_uint8(tf.constant(images[image_id][0]),
                                     cell.config.data.image_size).numpy()
            records.append(dict(image=_png(jitter(pixels, rng)), image_id=new_id,
                                source="jitter"))
            ids.append(new_id)
        new_pairs.append(dict(id_a=ids[0], id_b=ids[1], attribute=net.attribute,
                              target=float(target), source="jitter", split=name))
    writer.add_to_data_dir(data_dir, images=records, table=name, pairs=new_pairs,
                           command=cell.command)
    return name


# --------------------------------------------------------------------------- one cell
def run_cell(cell):
    """Every method of one attribute and seed: {"normal": {method: acc}, "auto": {...},
    "curve": [(method, round, labels, accuracy)]}."""
    from relattr_tf.training import attic as attic_lib
    net, seed = cell.config.family, cell.config.train.seed
    half, per_round = cell.n // 2, cell.per_round
    if per_round < 1:
        raise ValueError(f"--real_pairs={cell.n} is too small for {cell.rounds} rounds")
    eval_split = net.eval_split[0]
    # Every method starts from the ranker the loop pretrains on the n/2 real pairs.
    loop_config = cell.config.with_values(real_pairs=half, slots=per_round, warm_start="")
    loop = active_loop.run_rounds(loop_config, os.path.join(cell.directory, "attic"),
                                  active_loop.LoopOptions(
                                      rounds=cell.rounds, labeler="crowd", crowd_seed=seed,
                                      command=cell.command, split_prefix=f"{cell.prefix}-attic"))
    start = _accuracy(loop["pretrained"], eval_split)
    curve = [(m, 0, half, start) for m in CURVE]
    attic_splits, sj_splits = [], []
    for r in range(1, cell.rounds + 1):
        labels = half + r * per_round
        curve.append(("attic", r, labels, _accuracy(loop[r]["evaluation"], eval_split)))
        curve.append(("real", r, labels, _train_ranker(cell, f"real-r{r:02d}",
                                                       [_real_split(cell, labels)])))
        images, y, info = semantic_jitter_pairs(cell, per_round, f"round-{r}")
        name = f"{cell.prefix}-sj-{net.attribute}-r{r:02d}"
        directory = _package(cell, os.path.join(cell.directory, "semantic_jitter",
                                                f"round-{r:02d}"), images, y, info, name)
        sj_splits += [s for s in [_labelled(cell, directory, name)] if s]
        curve.append(("semantic_jitter", r, labels, _train_ranker(
            cell, f"semantic_jitter-r{r:02d}", [_real_split(cell, half)], sj_splits)))
        attic_splits.append(loop[r]["labels"]["name"])
    real_n = _real_split(cell, cell.n)
    last = lambda method: [c for c in curve if c[0] == method][-1]
    normal = {"real": last("real")[3] if last("real")[2] == cell.n else
              _train_ranker(cell, "real", [real_n]),
              "attic": last("attic")[3], "semantic_jitter": last("semantic_jitter")[3],
              "real_plus": _train_ranker(cell, "real_plus", [real_n],
                                         [real_plus_split(cell, cell.n)]),
              "jitter": _train_ranker(cell, "jitter", [real_n], [jitter_split(cell, real_n)])}
    # Auto: n generated pairs each, labelled by their y.
    images, y, info = semantic_jitter_pairs(cell, cell.n, "auto")
    name = f"{cell.prefix}-sj-{net.attribute}-auto"
    directory = _package(cell, os.path.join(cell.directory, "semantic_jitter", "auto"), images,
                         y, info, name)
    auto = {"real": normal["real"],
            "semantic_jitter": _train_ranker(cell, "semantic_jitter-auto", [real_n],
                                             [_labelled(cell, directory, name, True)])}
    # Round 1's control: trained against the pretrained ranker, before any label was spent.
    control, _ = attic_lib.load_control(os.path.join(cell.directory, "attic", "round-01",
                                                     "adversarial"))
    decoder, info = _generator(cell)
    fresh = np.random.default_rng([seed, 17]).normal(size=(cell.n, 2 * info["z_size"]))
    images, y = attic_lib.generate_pairs(control, decoder, fresh.astype(np.float32),
                                         cell.config.data.image_size, training=True)
    name = f"{cell.prefix}-attic-{net.attribute}-auto"
    directory = _package(cell, os.path.join(cell.directory, "attic", "auto"), images, y, info,
                         name)
    auto["attic"] = _train_ranker(cell, "attic-auto", [real_n],
                                  [_labelled(cell, directory, name, True)])
    return dict(normal=normal, auto=auto, curve=curve)


# --------------------------------------------------------------------------- outputs
def _mean_std(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "n/a"
    std = f" ± {100 * np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
    return f"{100 * np.mean(values):.2f}{std}"


def write_table(cells, model_dir, attributes, seeds, header):
    """results_attic.md / .csv from {(attribute, seed): run_cell result}."""
    from relattr_tf.evaluation import write_markdown_and_csv
    lines, csv_rows = [], []
    for block, methods in (("normal", NORMAL), ("auto", AUTO)):
        for method in methods:
            row = [f"{block.capitalize()}: {LABELS[method]}"]
            for attribute in attributes:
                values = [cells[(attribute, s)][block][method] for s in seeds]
                row.append(_mean_std(values))
                csv_rows += [[block, method, attribute, str(s), f"{v:.4f}"]
                             for s, v in zip(seeds, values)]
            row.append(_mean_std([np.mean([cells[(a, s)][block][method] for a in attributes])
                                  for s in seeds]))
            lines.append(row)
    columns = ["method"] + list(attributes) + ["mean"]
    return write_markdown_and_csv(os.path.join(model_dir, "results_attic"), columns, lines,
                                  csv_header=["block", "method", "attribute", "seed",
                                              "accuracy"], csv_rows=csv_rows,
                                  preamble=header.split("\n"))


def write_curve(cells, model_dir, attributes, seeds):
    """learning_curve.csv / .png and TensorBoard scalars: gain over Real vs labels spent."""
    rows = []
    for (attribute, seed), cell in sorted(cells.items()):
        real = {r: acc for m, r, _, acc in cell["curve"] if m == "real"}
        for method, r, labels, acc in cell["curve"]:
            rows.append(dict(attribute=attribute, seed=seed, method=method, round=r,
                             labels=labels, accuracy=acc, gain_over_real=acc - real[r]))
    with open(os.path.join(model_dir, "learning_curve.csv"), "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    figure, axes = pyplot.subplots(1, len(attributes) + 1,
                                   figsize=(3.2 * (len(attributes) + 1), 3.0), sharey=True)
    import tensorflow as tf
    for column, attribute in enumerate(list(attributes) + ["mean"]):
        axis = axes[column]
        for method in CURVE:
            chosen = [r for r in rows if r["method"] == method and
                      (attribute == "mean" or r["attribute"] == attribute)]
            labels = sorted({r["labels"] for r in chosen})
            gains = [100 * np.mean([r["gain_over_real"] for r in chosen if r["labels"] == x])
                     for x in labels]
            axis.plot(labels, gains, marker="o", label=LABELS[method])
            log = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard", method))
            with log.as_default():
                for x, gain in zip(labels, gains):
                    tf.summary.scalar(f"gain_over_real/{attribute}", gain, step=int(x))
            log.flush()
        axis.set_title(attribute)
        axis.set_xlabel("labels spent")
        axis.axhline(0, color="grey", linewidth=0.5)
    axes[0].set_ylabel("accuracy gain over Real (points)")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(os.path.join(model_dir, "learning_curve.png"), dpi=120)
    pyplot.close(figure)
    return rows


def run_experiment(config, model_dir, attributes, seeds, rounds, command=""):
    """Every cell, then the table and the curve; returns the table's markdown."""
    from relattr_tf import machine
    from relattr_tf.training import run
    started = time.time()
    run.ensure_data(config)
    data_hash = pipeline.data_hash(config.data.data_dir)  # before the experiment adds splits
    cells = {}
    for attribute in attributes:
        for seed in seeds:
            print(f"== ATTIC experiment: {attribute}, seed {seed}", flush=True)
            cell = Cell(config.with_values(attribute=attribute, seed=seed),
                        os.path.join(model_dir, attribute, f"seed-{seed}"), rounds, command)
            cells[(attribute, seed)] = run_cell(cell)
    n, net = config.family.real_pairs, config.family
    cpu = machine.cpu_description()
    header = (f"Command: `{command}`  \nData: {config.data.data_dir} (sha256 "
              f"{data_hash[:16]} before the experiment added its splits), evaluated on "
              f"{net.eval_split[0]}; label budget n = {n}, {rounds} round(s) of {n // (2 * rounds)}"
              f" pairs; seeds {', '.join(map(str, seeds))}; accuracy in % (mean ± std over "
              f"seeds)  \nRuns: {(time.time() - started) / 60:.1f} min on {cpu['cpu']} "
              f"({cpu['cpu_count']} cores; flags {cpu['cpu_flags']})")
    table = write_table(cells, model_dir, attributes, seeds, header)
    write_curve(cells, model_dir, attributes, seeds)
    print(table, flush=True)
    return table
