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
Outputs: one ledger record per method, block, attribute and seed (evaluation.ledger; a
finished cell is skipped on a rerun, here or on another machine), then from the ledger
<model_dir>/results_attic.md and .csv (methods x attributes, mean ± std over seeds),
learning_curve.csv and .png, and the curve as TensorBoard scalars under <model_dir>/tensorboard.
Every run is reused when it finished with the same settings, so a killed experiment continues.
"""
import csv
import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from relattr_tf.artifacts import control as control_artifact, rounds
from relattr_tf.data import pipeline, writer
from relattr_tf.evaluation import ledger as ledger_lib, studies
from relattr_tf.experiments import active_loop, attic_baselines as baselines
from relattr_tf.training import run, task as task_lib

NORMAL, AUTO, CURVE = studies.ATTIC_NORMAL, studies.ATTIC_AUTO, studies.ATTIC_CURVE


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
        return f"{rounds.run_prefix(experiment)}-s{self.config.train.seed}"

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
    splits = active_loop.mixed_splits(cell.config, real, [s for s in extra if s])
    config = active_loop.ranker_config(cell.config, splits).with_values(
        warm_start=os.path.join(cell.directory, "attic", rounds.PRETRAINED_DIR))
    results = run.train_or_reuse(config, os.path.join(cell.directory, name))
    return _accuracy(results, config.family.eval_split[0])


# --------------------------------------------------------------------------- one cell
def run_cell(cell):
    """Every method of one attribute and seed: {"normal": {method: acc}, "auto": {...},
    "curve": [(method, round, labels, accuracy)]}."""
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
                                      command=cell.command,
                                      split_prefix=f"{cell.prefix}-attic"))
    start = _accuracy(loop["pretrained"], eval_split)
    curve = [(m, 0, half, start) for m in CURVE]
    attic_splits, sj_splits = [], []
    for r in range(1, cell.rounds + 1):
        labels = half + r * per_round
        curve.append(("attic", r, labels, _accuracy(loop[r]["evaluation"], eval_split)))
        curve.append(("real", r, labels, _train_ranker(cell, f"real-r{r:02d}",
                                                       [_real_split(cell, labels)])))
        images, y, info = baselines.semantic_jitter_pairs(cell, per_round, f"round-{r}")
        name = f"{cell.prefix}-sj-{net.attribute}-r{r:02d}"
        directory = baselines.write_package(cell, os.path.join(
            cell.directory, "semantic_jitter", f"round-{r:02d}"), images, y, info, name)
        sj_splits += [s for s in [baselines.labelled_split(cell, directory, name)] if s]
        curve.append(("semantic_jitter", r, labels, _train_ranker(
            cell, f"semantic_jitter-r{r:02d}", [_real_split(cell, half)], sj_splits)))
        attic_splits.append(loop[r]["labels"]["name"])
    real_n = _real_split(cell, cell.n)
    last = lambda method: [c for c in curve if c[0] == method][-1]
    normal = {"real": last("real")[3] if last("real")[2] == cell.n else
              _train_ranker(cell, "real", [real_n]),
              "attic": last("attic")[3], "semantic_jitter": last("semantic_jitter")[3],
              "real_plus": _train_ranker(cell, "real_plus", [real_n],
                                         [baselines.real_plus_split(cell, cell.n)]),
              "jitter": _train_ranker(cell, "jitter", [real_n],
                                      [baselines.jitter_split(cell, real_n)])}
    # Auto: n generated pairs each, labelled by their y.
    images, y, info = baselines.semantic_jitter_pairs(cell, cell.n, "auto")
    name = f"{cell.prefix}-sj-{net.attribute}-auto"
    directory = baselines.write_package(
        cell, os.path.join(cell.directory, "semantic_jitter", "auto"), images, y, info, name)
    auto = {"real": normal["real"],
            "semantic_jitter": _train_ranker(
                cell, "semantic_jitter-auto", [real_n],
                [baselines.labelled_split(cell, directory, name, True)])}
    # Round 1's control: trained against the pretrained ranker, before any label was spent.
    control, _ = control_artifact.load_control(os.path.join(
        rounds.round_dir(os.path.join(cell.directory, "attic"), 1), rounds.ADVERSARIAL_DIR))
    decoder, info = baselines.generator(cell)
    fresh = np.random.default_rng([seed, 17]).normal(size=(cell.n, 2 * info["z_size"]))
    images, y = control_artifact.generate_pairs(control, decoder, fresh.astype(np.float32),
                                                cell.config.data.image_size, training=True)
    name = f"{cell.prefix}-attic-{net.attribute}-auto"
    directory = baselines.write_package(cell, os.path.join(cell.directory, "attic", "auto"),
                                        images, y, info, name)
    auto["attic"] = _train_ranker(cell, "attic-auto", [real_n],
                                  [baselines.labelled_split(cell, directory, name, True)])
    return dict(normal=normal, auto=auto, curve=curve)


# --------------------------------------------------------------------------- ledger and outputs
def cell_inputs(config):
    """The files from outside a cell, hashed as ATTIC's task does: the generator and any
    backbone file (every method starts from the cell's own pretrained ranker, not from the
    config's --warm_start or --control_from)."""
    return task_lib.make_task(config.with_values(warm_start="", control_from="")) \
        .input_fingerprint()


def cell_settings(config, rounds_count):
    return dict(eval_split=config.family.eval_split[0], rounds=rounds_count)


def cell_records(result, cell, study, data_hash, seconds):
    """The ledger records of one run_cell result: one per block and method."""
    net = cell.config.family
    inputs, settings = cell_inputs(cell.config), cell_settings(cell.config, cell.rounds)
    records = []
    for block in ("normal", "auto"):
        for method, accuracy in result[block].items():
            metrics = dict(accuracy=accuracy, label_budget=cell.n,
                           cell_seconds=round(seconds, 1))
            if block == "normal" and method in CURVE:
                metrics["curve"] = [[r, labels, acc] for m, r, labels, acc in result["curve"]
                                    if m == method]
            key = dict(block=block, method=method, attribute=net.attribute,
                       seed=cell.config.train.seed)
            records.append((key, ledger_lib.record_of(
                "attic", study, key, cell.command, cell.config, metrics,
                seconds / (len(NORMAL) + len(AUTO)),  # the cell's time, shared by its records
                cell.config.data.data_dir, data_hash, inputs, settings)))
    return records


def _methods(block):
    return NORMAL if block == "normal" else AUTO


def write_curve(records, model_dir):
    """learning_curve.csv / .png and the curve as TensorBoard scalars (gain over Real)."""
    rows = studies.attic_curve(records)
    with open(os.path.join(model_dir, "learning_curve.csv"), "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    studies.attic_plot(records, os.path.join(model_dir, "learning_curve.png"))
    for method in CURVE:
        log = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard", method))
        with log.as_default():
            for attribute in sorted({r["attribute"] for r in rows}) + ["mean"]:
                chosen = [r for r in rows if r["method"] == method and
                          attribute in ("mean", r["attribute"])]
                for labels in sorted({r["labels"] for r in chosen}):
                    gain = np.nanmean([r["gain_over_real"] for r in chosen
                                       if r["labels"] == labels])
                    tf.summary.scalar(f"gain_over_real/{attribute}", 100 * gain,
                                      step=int(labels))
        log.flush()
    return rows


def run_experiment(config, model_dir, attributes, seeds, rounds_count, command, ledger):
    """Every cell not yet in the ledger, then the table and the curve from the whole ledger;
    returns the table's markdown. The data directory grows as cells append their splits, so a
    record holds its hash at the start of the run that wrote it and reruns do not compare it;
    the generator's hash and the settings are compared."""
    run.ensure_data(config)
    data_hash = pipeline.data_hash(config.data.data_dir)  # before this run adds splits
    for attribute in attributes:
        for seed in seeds:
            cell_config = config.with_values(attribute=attribute, seed=seed)
            keys = [dict(block=b, method=m, attribute=attribute, seed=seed)
                    for b in ("normal", "auto") for m in _methods(b)]
            done = [ledger.finished(k, cell_config, cell_settings(cell_config, rounds_count),
                                    cell_inputs(cell_config)) for k in keys]
            if all(done):
                print(f"== ATTIC experiment: {attribute}, seed {seed}: finished "
                      f"({ledger.directory})", flush=True)
                continue
            print(f"== ATTIC experiment: {attribute}, seed {seed}", flush=True)
            started = time.time()
            cell = Cell(cell_config, os.path.join(model_dir, attribute, f"seed-{seed}"),
                        rounds_count, command)
            result = run_cell(cell)
            for key, record in cell_records(result, cell, ledger.study, data_hash,
                                            time.time() - started):
                ledger.write(key, record)
    records = ledger.records()
    table = studies.write_study(records, ledger.study, os.path.dirname(ledger.directory),
                                os.path.join(model_dir, "results_attic"))
    write_curve(records, model_dir)
    print(table, flush=True)
    return table
