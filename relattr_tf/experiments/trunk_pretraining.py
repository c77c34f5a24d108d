"""The trunk's pretraining as a study: pretrain (or reuse a finished run in model_dir), then
one ledger cell per (image size, precision, seed) with the held-out accuracy of every head,
the linear probe against a random trunk, and the gate's verdict (evaluation.trunk_gate)."""
from relattr_tf.data import pipeline, schema
from relattr_tf.evaluation.ledger import record_of
from relattr_tf.training import run


def pretrain_cell(config):
    """The cell's key; a pretrain table drawn other than as the benchmark (make_synthetic's
    --pretrain_scenery, --pretrain_global) adds how, --pretrain_heads which heads, and
    --first_heads and --balanced_heads how they are trained."""
    cell = dict(image_size=config.data.image_size, precision=config.train.mixed_precision,
                seed=config.train.seed)
    table = schema.image_table(schema.read_metadata(config.data.data_dir), config.data.data_dir,
                               config.family.pretrain_table)
    for key, usual in (("scenery", "benchmark"), ("global_strengths", "drawn")):
        if table.get(key, usual) != usual:
            cell[key] = table[key]
    if config.family.pretrain_heads:  # a subset of the table's heads (an interference study)
        cell["heads"] = "+".join(config.family.pretrain_heads)
    if config.family.first_heads:  # a curriculum
        cell["first_heads"] = "+".join(config.family.first_heads)
        cell["first_heads_steps"] = config.family.first_heads_steps
    if config.family.balanced_heads:
        cell["balanced_heads"] = "+".join(config.family.balanced_heads)
        if config.family.balance_every > 1:
            cell["balance_every"] = config.family.balance_every
    return cell


def pretrain_and_record(config, model_dir, ledger, command):
    """Pretrains into model_dir unless a run there finished with this config, and records the
    cell unless the ledger has it. Returns (eval_pretrain result, record)."""
    run.ensure_data(config)
    data_hash = pipeline.data_hash(config.data.data_dir)
    cell = pretrain_cell(config)
    record = ledger.finished(cell, config, data_sha256=data_hash)  # another recipe: an error
    result = run.train_or_reuse(config, model_dir)["pretrain"]
    if record is None:
        metrics = {k: result.get(k, {}) for k in ("heldout_accuracy", "chance_accuracy",
                                                  "ceilings", "heldout_images", "probe",
                                                  "gate")}
        record = ledger.write(cell, record_of(
            "pretrain", ledger.study, cell, command, config, metrics,
            run.read_summary(model_dir)["seconds"], config.data.data_dir, data_hash))
    return result, record
