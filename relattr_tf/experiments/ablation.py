"""The DACRL ablation: RankNet vs DACRL without attention vs DACRL (and optionally DeepSTN's two
stages), on coarse and fine pairs, every model with the same recipe.

Each cell (pair set x attribute x model x seed) trains in <model_dir>/<pair set>/<attribute>/
<model>/seed<k> and is evaluated on its pair set's test split; its figures go into the ledger
(evaluation.ledger) as it finishes. A cell already in the ledger is not run again, so a study
continues where it stopped, on this machine or another. The table is made from the ledger
(evaluation.studies), so `python -m relattr_tf.report` gives the same one.
"""
import os

from relattr_tf.artifacts import pair_model
from relattr_tf.data import pipeline
from relattr_tf.evaluation import studies
from relattr_tf.evaluation.ledger import record_of
from relattr_tf.training import run, task as task_lib

SPLITS = {"coarse": ("train", "test"), "fine": ("train_fine", "test_fine")}
MODELS = ("ranknet", "dacrl_noatt", "dacrl", "deepstn_crop", "deepstn")


def cell_config(config, model_dir, pair_set, attribute, model, seed, models):
    train_split, test_split = SPLITS[pair_set]
    run_config = config.with_values(model=model, attribute=attribute, seed=seed,
                                    train_split=(train_split,), eval_split=(test_split,))
    if model == "deepstn" and "deepstn_crop" in models:
        # DeepSTN's stage 2 starts from the stage-1 run of the same setting.
        run_config = run_config.with_values(init_from=run_dir(
            model_dir, pair_set, attribute, "deepstn_crop", seed))
    return run_config


def run_dir(model_dir, pair_set, attribute, model, seed):
    return os.path.join(model_dir, pair_set, attribute, model, f"seed{seed}")


def run_ablation(config, model_dir, models, pair_sets, attributes, seeds, ledger, command):
    """Runs every cell not yet in the ledger; returns the records of all of them."""
    run.ensure_data(config)
    data_hash = pipeline.data_hash(config.data.data_dir)
    records = []
    in_order = [m for m in MODELS if m in models]  # DeepSTN's stage 1 before its stage 2
    for pair_set in pair_sets:
        for attribute in attributes:
            for model in in_order:
                for seed in seeds:
                    run_config = cell_config(config, model_dir, pair_set, attribute, model,
                                             seed, models)
                    cell = dict(pair_set=pair_set, attribute=attribute, model=model, seed=seed)
                    settings = dict(eval_split=SPLITS[pair_set][1])
                    inputs = task_lib.make_task(run_config).input_fingerprint()
                    record = ledger.finished(cell, run_config, settings, inputs, data_hash)
                    if record is None:
                        record = ledger.write(cell, run_cell(
                            run_config, run_dir(model_dir, pair_set, attribute, model, seed),
                            cell, ledger.study, command, data_hash, model_dir, models,
                            settings, inputs))
                    else:
                        print(f"{ledger.path(cell)}: finished", flush=True)
                    records.append(record)
    return records


def run_cell(run_config, directory, cell, study, command, data_hash, model_dir, models,
             settings, inputs):
    stage_one = run_config.family.init_from
    if stage_one and not os.path.exists(os.path.join(stage_one, pair_model.KERAS_FILE)):
        # Stage 1 finished on another machine: its weights are needed here to start stage 2.
        run.train_or_reuse(cell_config(run_config.with_values(init_from=""), model_dir,
                                       cell["pair_set"], cell["attribute"], "deepstn_crop",
                                       cell["seed"], models), stage_one)
    split = run_config.family.eval_split[0]
    result = run.train_or_reuse(run_config, directory)[split]
    seconds = run.read_summary(directory)["seconds"]
    metrics = {k: result[k] for k in ("accuracy", "truth_accuracy", "symmetrised_accuracy",
                                      "symmetrised_truth_accuracy", "pairs_used",
                                      "box_coverage", "split") if k in result}
    return record_of("ablation", study, cell, command, run_config, metrics, seconds,
                     run_config.data.data_dir, data_hash, inputs, settings)


def write_table(ledger, model_dir):
    """<model_dir>/ablation.md, .csv and .png from every record of the study's ledger (what
    `python -m relattr_tf.report` makes of it too)."""
    return studies.write_study(ledger.records(), ledger.study,
                               os.path.dirname(ledger.directory),
                               os.path.join(model_dir, "ablation"))
