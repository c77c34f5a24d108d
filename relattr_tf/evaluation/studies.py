"""A study's table and plot from its ledger records (relattr_tf.evaluation.ledger), the same
whether the experiment command just ran or `python -m relattr_tf.report` reads a committed
ledger. Each record's `kind` names its study's shape:

    ablation   cells pair_set x attribute x model x seed; rows (pair set, attribute) and each
               pair set's mean, a column per model: accuracy / accuracy against exact truth
    attic      cells block x method x attribute x seed; rows block: method, a column per
               attribute and the mean; the learning curve from the normal block's records
    splits     cells split x attribute; a row per attribute and the mean over the splits
    pretrain   cells image size x precision x seed of the trunk's pretraining; a row per head
               and per probed attribute, a column per cell, and the gate's verdict

Every figure is mean ± std over seeds (or splits) by report.mean_std; a mean over attributes is
taken within each seed first.
"""
import collections
import os

import matplotlib
import numpy as np

from relattr_tf.evaluation import generator_table, pretrain_table, report

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402  after the backend is chosen
from matplotlib import ticker  # noqa: E402

ABLATION_MODELS = ("ranknet", "dacrl_noatt", "dacrl", "deepstn_crop", "deepstn")
ATTIC_NORMAL = ("real", "real_plus", "jitter", "semantic_jitter", "attic")
ATTIC_AUTO = ("real", "semantic_jitter", "attic")
ATTIC_CURVE = ("real", "semantic_jitter", "attic")
ATTIC_LABELS = {"real": "Real", "real_plus": "Real+", "jitter": "Jitter",
                "semantic_jitter": "Semantic Jitter", "attic": "ATTIC"}


def _ordered(values, order=()):
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def _per_seed(records, metric, **cell):
    """{seed: metric} of the records matching `cell`."""
    return {r["cell"]["seed"]: r["metrics"].get(metric, float("nan")) for r in records
            if all(r["cell"].get(k) == v for k, v in cell.items())}


def _seed_means(records, metric, keys, **cell):
    """Per seed, the mean of `metric` over the records of each key in keys (e.g. attributes);
    seeds missing a key are left out."""
    tables = [_per_seed(records, metric, **dict(cell, **key)) for key in keys]
    seeds = set.intersection(*(set(t) for t in tables)) if tables else set()
    return [float(np.mean([t[s] for t in tables])) for s in sorted(seeds)]


# --------------------------------------------------------------------------- ablation
def ablation_table(records):
    models = _ordered([r["cell"]["model"] for r in records], ABLATION_MODELS)
    header = ["pair set", "attribute"] + [f"{m} acc / truth" for m in models] + ["seeds"]
    csv_header = ["pair_set", "attribute"] + [f"{m}_{c}" for m in models for c in (
        "accuracy", "accuracy_std", "truth_accuracy", "truth_accuracy_std", "accuracy_ci95_low",
        "accuracy_ci95_high")] + ["seeds"]
    rows, csv_rows = [], []
    for pair_set in _ordered([r["cell"]["pair_set"] for r in records], ("coarse", "fine")):
        chosen = [r for r in records if r["cell"]["pair_set"] == pair_set]
        attributes = _ordered([r["cell"]["attribute"] for r in chosen])
        for attribute in attributes + ["mean"]:
            keys = [dict(attribute=a) for a in attributes] if attribute == "mean" else [
                dict(attribute=attribute)]
            cells, raw, seeds = [], [], set()
            for model in models:
                figures = []
                for metric in ("accuracy", "truth_accuracy"):
                    text, mean, std = report.mean_std(_seed_means(
                        chosen, metric, keys, model=model))
                    figures.append(text)
                    raw += [f"{mean:.2f}", f"{std:.2f}"]
                low, high = report.seed_interval(_seed_means(chosen, "accuracy", keys,
                                                             model=model))
                raw += [f"{100 * low:.2f}", f"{100 * high:.2f}"]
                seeds |= set(_per_seed(chosen, "accuracy", model=model, **keys[0]))
                cells.append(" / ".join(figures))
            seed_text = " ".join(str(s) for s in sorted(seeds))
            rows.append([pair_set, attribute] + cells + [seed_text])
            csv_rows.append([pair_set, attribute] + raw + [seed_text])
    return header, rows, csv_header, csv_rows


def ablation_plot(records, path):
    """Each pair set's accuracy, mean over attributes, per model: the table's mean rows."""
    models = _ordered([r["cell"]["model"] for r in records], ABLATION_MODELS)
    pair_sets = _ordered([r["cell"]["pair_set"] for r in records], ("coarse", "fine"))
    figure, axis = pyplot.subplots(figsize=(2.0 + 1.3 * len(models) * len(pair_sets), 3.4))
    width = 0.8 / max(len(pair_sets), 1)
    for i, pair_set in enumerate(pair_sets):
        chosen = [r for r in records if r["cell"]["pair_set"] == pair_set]
        keys = [dict(attribute=a) for a in _ordered([r["cell"]["attribute"] for r in chosen])]
        values = [report.mean_std(_seed_means(chosen, "accuracy", keys, model=m))[1:]
                  for m in models]
        axis.bar(np.arange(len(models)) + i * width, [v[0] for v in values], width,
                 yerr=[np.nan_to_num(v[1]) for v in values], label=pair_set, capsize=3)
    axis.set_xticks(np.arange(len(models)) + width * (len(pair_sets) - 1) / 2, models)
    axis.axhline(50, color="grey", linewidth=0.8, linestyle="--", label="chance")
    axis.set_ylim(0, 100)
    axis.set_ylabel("accuracy, mean over\nattributes (%)")
    axis.set_title("mean ± std over seeds", fontsize=9)
    axis.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


# --------------------------------------------------------------------------- attic
def attic_table(records):
    attributes = _ordered([r["cell"]["attribute"] for r in records])
    header = ["method"] + attributes + ["mean"]
    rows, csv_rows = [], []
    for block, methods in (("normal", ATTIC_NORMAL), ("auto", ATTIC_AUTO)):
        chosen = [r for r in records if r["cell"]["block"] == block]
        for method in methods:
            if not any(r["cell"]["method"] == method for r in chosen):
                continue
            row = [f"{block.capitalize()}: {ATTIC_LABELS[method]}"]
            for attribute in attributes:
                per_seed = _per_seed(chosen, "accuracy", method=method, attribute=attribute)
                row.append(report.mean_std(per_seed.values())[0])
                csv_rows += [[block, method, attribute, str(s), f"{v:.4f}"]
                             for s, v in sorted(per_seed.items())]
            row.append(report.mean_std(_seed_means(
                chosen, "accuracy", [dict(attribute=a) for a in attributes], method=method))[0])
            rows.append(row)
    return header, rows, ["block", "method", "attribute", "seed", "accuracy"], csv_rows


def attic_curve(records):
    """Rows (attribute, seed, method, round, labels, accuracy, gain_over_real) of the normal
    block's learning curves."""
    out = []
    for r in records:
        if r["cell"]["block"] != "normal" or "curve" not in r["metrics"]:
            continue
        real = next((x for x in records if x["cell"]["block"] == "normal" and
                     x["cell"]["method"] == "real" and
                     x["cell"]["attribute"] == r["cell"]["attribute"] and
                     x["cell"]["seed"] == r["cell"]["seed"]), None)
        real_by_round = {p[0]: p[2] for p in real["metrics"]["curve"]} if real else {}
        for round_, labels, accuracy in r["metrics"]["curve"]:
            out.append(dict(attribute=r["cell"]["attribute"], seed=r["cell"]["seed"],
                            method=r["cell"]["method"], round=round_, labels=labels,
                            accuracy=accuracy,
                            gain_over_real=accuracy - real_by_round.get(round_, np.nan)))
    return out


def attic_plot(records, path):
    """The learning curve: each method's gain over Real against the labels spent."""
    rows = attic_curve(records)
    attributes = _ordered([r["attribute"] for r in rows]) + ["mean"]
    figure, axes = pyplot.subplots(1, len(attributes), figsize=(3.2 * len(attributes), 3.0),
                                   sharey=True, squeeze=False)
    for axis, attribute in zip(axes[0], attributes):
        for method in ATTIC_CURVE:
            chosen = [r for r in rows if r["method"] == method and
                      (attribute == "mean" or r["attribute"] == attribute)]
            labels = sorted({r["labels"] for r in chosen})
            gains = [100 * np.nanmean([r["gain_over_real"] for r in chosen
                                       if r["labels"] == x]) for x in labels]
            axis.plot(labels, gains, marker="o", label=ATTIC_LABELS[method])
        axis.set_title(attribute)
        axis.set_xlabel("labels spent")
        axis.axhline(0, color="grey", linewidth=0.5)
    axes[0][0].set_ylabel("accuracy gain over Real (points)")
    axes[0][0].legend(fontsize=7)
    return _save(figure, path)


# --------------------------------------------------------------------------- splits
def splits_table(records):
    attributes = _ordered([r["cell"]["attribute"] for r in records])
    by_seed = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in records:
        by_seed[r["cell"]["attribute"]][r["cell"]["split"]].append(r["metrics"]["accuracy"])
    per_split = {a: {k: float(np.mean(v)) for k, v in splits.items()}
                 for a, splits in by_seed.items()}
    splits = sorted(set.intersection(*(set(v) for v in per_split.values())))
    rows = []
    for attribute in attributes:
        text, mean, std = report.mean_std(per_split[attribute].values())
        rows.append([attribute, f"{mean:.2f}", f"{std:.2f}", str(len(per_split[attribute]))])
    means = [float(np.mean([per_split[a][s] for a in attributes])) for s in splits]
    _, mean, std = report.mean_std(means)
    rows.append(["mean", f"{mean:.2f}", f"{std:.2f}", str(len(splits))])
    header = ["attribute", "mean accuracy", "std", "splits"]
    return header, rows, ["attribute", "mean_accuracy", "std", "splits"], rows


# --------------------------------------------------------------------------- runners
def runners_table(records):
    """Wall seconds per (job, runner): median (min-max over repeats), the ratio to the first
    runner's median, and whether the runner wrote the first runner's shard files."""
    jobs = _ordered([r["cell"]["job"] for r in records])
    runners = _ordered([r["cell"]["runner"] for r in records],
                       ("direct", "direct_multiprocessing", "dask"))
    rows = []
    for job in jobs:
        cells = {runner: [r for r in records if r["cell"]["job"] == job
                          and r["cell"]["runner"] == runner] for runner in runners}
        cells = {k: v for k, v in cells.items() if v}
        first = next(iter(cells))
        base = float(np.median([r["seconds"] for r in cells[first]]))
        reference = cells[first][0]["metrics"]["shards_sha256"]
        for runner, runs in cells.items():
            seconds = [r["seconds"] for r in runs]
            median = float(np.median(seconds))
            counts = runs[0]["metrics"]["counts"]
            same = all(r["metrics"]["shards_sha256"] == reference for r in runs)
            rows.append([job, runner, f"{median:.1f}", f"{min(seconds):.1f}-{max(seconds):.1f}",
                         str(len(runs)), f"{median / base:.2f}", "yes" if same else "**no**",
                         str(counts.get("images_written", 0)),
                         str(counts.get("pairs_written", 0))])
    header = ["job", "runner", "median s", "min-max s", "runs", f"x {runners[0]}",
              "same files", "images", "pairs"]
    csv_header = ["job", "runner", "median_seconds", "range_seconds", "runs", "ratio",
                  "same_files", "images_written", "pairs_written"]
    return header, rows, csv_header, rows


def generator_curve_plot(records, path):
    """The goals' figures against epochs (--goal_eval_every) of each cell that has them:
    pooled sweep Spearman and the crowd's agreement on fine pairs, per attribute. None
    when no cell has a curve."""
    curves = [(generator_table.column_name(r), r["metrics"]["goal_curve"]) for r in records
              if r["metrics"].get("goal_curve")]
    if not curves:
        return None
    figure, axes = pyplot.subplots(len(curves), 2, figsize=(9, 3.2 * len(curves)),
                                   squeeze=False)
    for row, (name, curve) in zip(axes, curves):
        epochs = [e["epoch"] for e in curve]
        for axis, (key, label, bar) in zip(row, (
                ("sweep_spearman", "sweep Spearman, pooled", 0.9),
                ("pair_agreement", "fine pairs: crowd agrees (%)", 90))):
            scale = 100 if key == "pair_agreement" else 1
            for attribute in curve[-1]["attributes"]:
                values = [e["attributes"].get(attribute, {}).get(key) for e in curve]
                axis.plot(epochs, [np.nan if v is None else scale * v for v in values],
                          marker="o", label=attribute)
            axis.axhline(bar, color="grey", linewidth=0.8, linestyle="--", label="goal")
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            axis.set_ylabel(label)
            axis.set_title(name, fontsize=9)
        row[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(figure, path)


# --------------------------------------------------------------------------- any study
TABLES = {"ablation": ablation_table, "attic": attic_table, "splits": splits_table,
          "pretrain": pretrain_table.pretrain_table, "runners": runners_table,
          "generator": generator_table.generator_table}
PLOTS = {"ablation": ablation_plot, "attic": attic_plot, "generator": generator_curve_plot}


def kind_of(records):
    kinds = sorted({r.get("kind", "") for r in records})
    if len(kinds) != 1 or kinds[0] not in TABLES:
        raise ValueError(f"a ledger's records must be of one known kind "
                         f"({', '.join(TABLES)}), found {', '.join(kinds) or 'none'}")
    return kinds[0]


def provenance(records, study, results_dir):
    """The table's head: where it came from (the ledger), the commands, the data, the input
    files, the seeds, the machines and the time, from the records themselves."""
    def distinct(values):
        return sorted({str(v) for v in values if v})
    lines = [f"From the result ledger {os.path.join(results_dir, study)}/ ({len(records)} "
             f"cells; `python -m relattr_tf.report --study={study}` makes this table again)."]
    lines += [f"Command: `{c}`" for c in distinct(r.get("command") for r in records)]
    hashes = sorted({(r.get("data_dir"), r.get("data_sha256")) for r in records
                     if r.get("data_dir")}, key=str)
    grows = records[0].get("kind") == "attic"
    lines += [f"Data: {d}, sha256 {h}" + (" (as each run that wrote cells found it, before "
                                          "it appended its splits)" if grows else "")
              for d, h in hashes]
    for name, path_key, hash_key in (("Backbone", "backbone_weights", "backbone_weights_sha256"),
                                     ("Generator", "generator_dir", "generator_sha256")):
        lines += [f"{name}: {p}, sha256 {h}" for p, h in sorted({
            (r["config"].get(path_key), r.get("inputs", {}).get(hash_key)) for r in records
            if r.get("inputs", {}).get(hash_key)}, key=str)]
    seeds = sorted({r["cell"]["seed"] for r in records if "seed" in r["cell"]})
    if seeds:
        lines.append(f"Seeds: {', '.join(map(str, seeds))}")
    machines = distinct(f"{r['machine']['cpu']} ({r['machine']['cpu_count']} cores; "
                        f"{r['machine']['cpu_flags']})" for r in records if "machine" in r)
    lines += [f"Machine: {m}" for m in machines]
    lines.append(f"Time: {sum(r.get('seconds', 0) for r in records) / 60:.1f} minutes of "
                 f"runs in all, as measured when each ran")
    lines += _description(records)
    return [line + "  " for line in lines]


def _description(records):
    """What the figures are, where the records say."""
    kind = records[0].get("kind")
    splits = ", ".join(sorted({str(r.get("settings", {}).get("eval_split")) for r in records}))
    if kind == "attic":
        budgets = sorted({(r["metrics"]["label_budget"], r["settings"]["rounds"])
                          for r in records})
        return [f"Evaluated on {splits}; label budget n = {n}, {rounds} round(s) of "
                f"{n // (2 * rounds)} pairs; accuracy in % (mean ± std over seeds)"
                for n, rounds in budgets]
    if kind == "splits":
        return [f"Evaluated on {splits}; accuracy in % (mean ± std over the splits, each "
                f"split's accuracy averaged over its seeds first)"]
    if kind == "runners":
        workers = sorted({str(r["settings"].get("workers")) for r in records})
        return [f"Wall time of each job's command in its own process, the runners taking "
                f"turns; {'/'.join(workers)} worker processes for direct_multiprocessing and "
                f"dask (a local cluster the job starts and closes); same files: the shard "
                f"files hash as the first runner's"]
    if kind == "generator":
        return ["Measured by the benchmark's own `measure` and simulated crowd on the "
                "generator's pictures (evaluation.generator); in bold, a figure that misses "
                "the layered generator's goal"]
    if kind == "pretrain":
        images = sorted({r["metrics"]["heldout_images"] for r in records})
        return [f"Heads: accuracy in % on the pretrain table's held-out "
                f"{'/'.join(map(str, images))} images; probe: Spearman on the test table of a "
                f"ridge probe fitted on the train table; in bold, a figure below the gate's bar"]
    return [f"Evaluated on {splits}; accuracy in % (mean ± std over seeds)"]


def write_study(records, study, results_dir, out_prefix):
    """<out_prefix>.md (provenance, then the table), .csv and, for studies with one, .png;
    returns the markdown."""
    kind = kind_of(records)
    header, rows, csv_header, csv_rows = TABLES[kind](records)
    preamble = provenance(records, study, results_dir)
    plot = PLOTS[kind](records, out_prefix + ".png") if kind in PLOTS else None
    if plot:
        preamble.append(f"\n![{study}]({os.path.basename(plot)})")
    return report.write_markdown_and_csv(out_prefix, header, rows, csv_header, csv_rows,
                                         preamble=preamble)


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return path
