"""A learned generator (the plain or the layered Attribute2Image) as a study: train it (or
reuse a finished run in model_dir), then one ledger cell per (model, image size, seed) with
its evaluation (evaluation.generator: sweeps, fine-step pairs with independent z and with one
z, sharpness, reconstruction against the blur references), as the oracle's cell has."""
import os

from relattr_tf.data import pipeline
from relattr_tf.evaluation.ledger import record_of
from relattr_tf.training import run, task as task_lib


def generator_cell(config):
    cell = dict(model=config.model, image_size=config.data.image_size, seed=config.train.seed)
    if config.family.background_y:  # the plain CVAE refuses it
        cell["background_y"] = True  # beside the reference's background of z_bg alone
    if config.train.mixed_precision != "float32":
        cell["precision"] = config.train.mixed_precision
    return cell


def train_and_record(config, model_dir, ledger, command):
    """Trains into model_dir unless a run there finished with this config, and records the
    cell unless the ledger has it; a finished run's new cell is evaluated again, so a cell
    holds every figure the evaluation now makes. Returns (eval_generator result, record)."""
    run.ensure_data(config)
    data_hash = pipeline.data_hash(config.data.data_dir)
    cell = generator_cell(config)
    record = ledger.finished(cell, config, data_sha256=data_hash)
    reused = os.path.exists(os.path.join(model_dir, run.SUMMARY_FILE))
    result = run.train_or_reuse(config, model_dir)["generator"]
    if reused and record is None:  # a new cell: measured by today's evaluation
        result = task_lib.make_task(config).evaluate(model_dir)["generator"]
    result = dict(result, kind="learned")
    if record is None:
        record = ledger.write(cell, record_of(
            "generator", ledger.study, cell, command, config, result,
            run.read_summary(model_dir)["seconds"], config.data.data_dir, data_hash))
    return result, record
