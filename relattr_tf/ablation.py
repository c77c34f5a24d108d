"""The DACRL ablation: RankNet vs DACRL without attention vs DACRL, on coarse and fine pairs.

    python -m relattr_tf.ablation --flagfile=configs/ablation.flags

Trains every (pair set, attribute, model, seed) with the training flags given (the same recipe
for every model), evaluates it, and writes <model_dir>/ablation.md and ablation.csv: accuracy
(crowd labels) and accuracy against exact truth, mean ± std over seeds, with the seeds listed;
the markdown starts with the command, the data's hash, the backbone file's hash, the runs'
time and the CPU.
--models may add DeepSTN's two stages (deepstn_crop, then deepstn starting from it).
A rerun skips the runs that already finished (each has its own model_dir and resumes).
"""
import json
import os
import sys

from absl import app, flags

from relattr_tf import cli
from relattr_tf import train as train_flags  # defines the training flags

SPLITS = {"coarse": ("train", "test"), "fine": ("train_fine", "test_fine")}
MODELS = ("ranknet", "dacrl_noatt", "dacrl", "deepstn_crop", "deepstn")
flags.DEFINE_list("models", list(MODELS), "Models to compare.")
flags.DEFINE_list("pair_sets", list(SPLITS), "coarse: train/test, fine: *_fine splits.")
flags.register_validator("models", lambda v: bool(v) and set(v) <= set(MODELS),
                         f"--models: a list out of {', '.join(MODELS)}")
flags.register_validator("pair_sets", lambda v: bool(v) and set(v) <= set(SPLITS),
                         f"--pair_sets: a list out of {', '.join(SPLITS)}")
flags.DEFINE_list("attributes", ["brightness", "contrast", "size", "stripes"], "Attributes.")
flags.DEFINE_list("seeds", ["0"], "Seeds; each run is repeated per seed.")
flags.register_validator("seeds", lambda v: all(s.isdigit() for s in v),
                         "--seeds: non-negative integers")
FLAGS = flags.FLAGS


def run_ablation(config, model_dir, models, pair_sets, attributes, seeds):
    import numpy as np
    from relattr_tf.training import run
    rows = []
    # DeepSTN's stage 1 runs before its stage 2, whatever order the table shows them in.
    in_order = [m for m in MODELS if m in models]
    for pair_set in pair_sets:
        train_split, test_split = SPLITS[pair_set]
        for attribute in attributes:
            for model in in_order:
                results = []
                seconds = []
                for seed in seeds:
                    run_config = config.with_values(
                        model=model, attribute=attribute, seed=seed, train_split=(train_split,),
                        eval_split=(test_split,))
                    if model == "deepstn" and "deepstn_crop" in models:
                        # DeepSTN's stage 2 starts from the stage-1 run of the same setting.
                        run_config = run_config.with_values(init_from=os.path.join(
                            model_dir, pair_set, attribute, "deepstn_crop", f"seed{seed}"))
                    run_dir = os.path.join(model_dir, pair_set, attribute, model, f"seed{seed}")
                    results.append(run.train_or_reuse(run_config, run_dir)[test_split])
                    with open(os.path.join(run_dir, "summary.json")) as f:
                        seconds.append(json.load(f)["seconds"])
                rows.append(dict(
                    pair_set=pair_set, attribute=attribute, model=model,
                    accuracy=[float(r["accuracy"]) for r in results],  # one per seed
                    truth_accuracy=[float(r.get("truth_accuracy", np.nan)) for r in results],
                    seeds=" ".join(str(s) for s in seeds), seconds=seconds))
    return rows


def provenance(config, rows, argv):
    """Lines for the table's head: the command, the data's hash, the backbone, the runs'
    training time and the machine."""
    from relattr_tf import machine
    from relattr_tf.data import pipeline
    data_dir = config.data.data_dir
    seconds = [s for r in rows for s in r["seconds"]]
    cpu = machine.cpu_description()
    lines = [f"Command: `python -m relattr_tf.ablation {' '.join(argv[1:])}`",
             f"Data: {data_dir}, sha256 {pipeline.data_hash(data_dir)} (its shards)"]
    backbone = getattr(config.family, "backbone_weights", "")
    if backbone:
        lines.append(f"Backbone: {backbone}, sha256 {_file_sha256(backbone)}")
    lines.append(f"Runs: {len(seconds)}, {sum(seconds) / 60:.1f} minutes of training and "
                 f"evaluation in all (as measured when each ran), on {cpu['cpu']} "
                 f"({cpu['cpu_count']} cores; {cpu['cpu_flags']})")
    return lines


def _file_sha256(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _mean_std(per_seed):
    """'mean ± std' (std over seeds, ddof 1) of per-seed percentages, or 'mean' for one seed;
    and the two numbers."""
    import numpy as np
    values = 100 * np.asarray(per_seed, np.float64)
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return (f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"), mean, std


def write_ablation_table(rows, model_dir, models, preamble=()):
    """One row per (pair set, attribute), one column per model, plus per-pair-set means: mean ±
    std over seeds (a pair set's mean is taken over its attributes within each seed first)."""
    import numpy as np
    from relattr_tf.evaluation import write_markdown_and_csv
    keys = list(dict.fromkeys((r["pair_set"], r["attribute"]) for r in rows))
    seeds = rows[0]["seeds"]
    md_rows, csv_rows = [], []
    for pair_set in dict.fromkeys(k[0] for k in keys):
        for key in [k for k in keys if k[0] == pair_set] + [(pair_set, "mean")]:
            cells, raw = [], []
            for model in models:
                chosen = [r for r in rows if r["model"] == model and r["pair_set"] == key[0]
                          and (key[1] == "mean" or r["attribute"] == key[1])]
                acc, acc_mean, acc_std = _mean_std(
                    np.mean([r["accuracy"] for r in chosen], axis=0))
                truth, truth_mean, truth_std = _mean_std(
                    np.mean([r["truth_accuracy"] for r in chosen], axis=0))
                cells.append(f"{acc} / {truth}")
                raw += [f"{acc_mean:.2f}", f"{acc_std:.2f}", f"{truth_mean:.2f}",
                        f"{truth_std:.2f}"]
            md_rows.append(list(key) + cells + [seeds])
            csv_rows.append(list(key) + raw + [seeds])
    return write_markdown_and_csv(
        os.path.join(model_dir, "ablation"),
        ["pair set", "attribute"] + [f"{m} acc / truth" for m in models] + ["seeds"], md_rows,
        ["pair_set", "attribute"] + [f"{m}_{c}" for m in models
                                     for c in ("accuracy", "accuracy_std", "truth_accuracy",
                                               "truth_accuracy_std")] + ["seeds"],
        csv_rows, preamble=preamble)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = train_flags.prepare()
    from relattr_tf.training import run
    run.ensure_data(config)
    rows = run_ablation(config, FLAGS.model_dir, FLAGS.models, FLAGS.pair_sets,
                        FLAGS.attributes, [int(s) for s in FLAGS.seeds])
    print(write_ablation_table(rows, FLAGS.model_dir, FLAGS.models,
                               provenance(config, rows, sys.argv)))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.ablation")
