"""Training and evaluating over numbered splits (Zap50K-1's ten): for k in the split numbers,
trains on <train_prefix>-kk and evaluates on <test_prefix>-kk (one network per attribute with
--attribute=all) under <model_dir>/split-kk; each finished (split, attribute) goes into the
ledger, and the summary (per attribute mean ± std over the splits, and their mean, as the
Zap50K-1 protocol reports it) is made from the ledger."""
import os

from relattr_tf.data import pipeline, schema
from relattr_tf.evaluation import studies
from relattr_tf.evaluation.ledger import record_of
from relattr_tf.training import run, task as task_lib


def run_splits(config, model_dir, numbers, train_prefix, test_prefix, ledger, command):
    """Runs every (split, attribute) not yet in the ledger; returns all their records."""
    run.ensure_data(config)
    data_dir = config.data.data_dir
    attributes = (schema.read_metadata(data_dir)["attributes"]
                  if config.family.attribute == "all" else [config.family.attribute])
    data_hash = pipeline.data_hash(data_dir)
    records = []
    for number in numbers:
        train_split, test_split = f"{train_prefix}-{number:02d}", f"{test_prefix}-{number:02d}"
        for attribute in attributes:
            run_config = config.with_values(attribute=attribute, train_split=(train_split,),
                                            eval_split=(test_split,), val_split="")
            cell = dict(split=number, attribute=attribute, seed=config.train.seed)
            settings = dict(eval_split=test_split)
            inputs = task_lib.make_task(run_config).input_fingerprint()
            record = ledger.finished(cell, run_config, settings, inputs, data_hash)
            if record is None:
                directory = os.path.join(model_dir, f"split-{number:02d}", attribute)
                result = run.train_or_reuse(run_config, directory)[test_split]
                seconds = run.read_summary(directory)["seconds"]
                record = ledger.write(cell, record_of(
                    "splits", ledger.study, cell, command, run_config,
                    {k: result[k] for k in ("accuracy", "truth_accuracy", "pairs_used")
                     if k in result}, seconds, data_dir, data_hash, inputs, settings))
            records.append(record)
    return records


def write_summary(ledger, model_dir):
    """<model_dir>/splits_summary.md and .csv from every record of the study's ledger."""
    return studies.write_study(ledger.records(), ledger.study, os.path.dirname(ledger.directory),
                               os.path.join(model_dir, "splits_summary"))
