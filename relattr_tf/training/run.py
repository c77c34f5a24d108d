"""train_and_evaluate(config, model_dir): any task (model family), end to end.

Resumable: a crash-safe checkpoint is written at every epoch end under <model_dir>/checkpoints,
so rerunning the same command after a crash (kill -9 included) continues from the last finished
epoch, and the data stream continues where it stopped. At the end the model is exported and
evaluated.
"""
import json
import os
import shlex
import time

import keras
import tensorflow as tf

from relattr_tf.artifacts import run_config
from relattr_tf.config import ConfigError
from relattr_tf.data import pipeline, schema
from relattr_tf.evaluation import report
from relattr_tf.training import callbacks, distribute, optimizers, task as task_lib

CHANGES_FILE = "config_changes.json"
SUMMARY_FILE = "summary.json"  # written last: the run has finished


def read_summary(model_dir):
    """A finished run's summary.json (results, seconds, inputs, steps)."""
    with tf.io.gfile.GFile(os.path.join(model_dir, SUMMARY_FILE)) as f:
        return json.load(f)


def ensure_data(config):
    """Builds the embedded benchmark when asked to and data_dir holds none."""
    data = config.data
    if tf.io.gfile.exists(schema.metadata_path(data.data_dir)) or not data.make_data:
        return
    from beam_jobs import make_synthetic  # Beam's import costs seconds; only when it builds
    argv = [f"--output_dir={data.data_dir}"] + shlex.split(data.make_data_args)
    print(f"no data in {data.data_dir}: building the embedded benchmark "
          f"(python -m beam_jobs.make_synthetic {' '.join(argv)})", flush=True)
    make_synthetic.run(argv)


def check_resumable(config, model_dir):
    """Compares the config with the one a model_dir was trained with.

    A changed network is refused, and so is a changed recipe for a run that has finished (its
    results are the old recipe's); a run that goes on training lists the changed settings and
    records them in config_changes.json, so a result never silently mixes two recipes.
    """
    path = os.path.join(model_dir, run_config.CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return
    previous = run_config.load_run_config(model_dir)
    if previous.model != config.model:
        raise ConfigError(f"{path}: this model_dir holds another network (model: "
                          f"{previous.model} -> {config.model}); use a new --model_dir")
    architecture, compared, _ = run_config.differences(config, previous)
    if architecture:
        what = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in architecture.items())
        raise ConfigError(f"{path}: this model_dir holds another network ({what}); use a new "
                          f"--model_dir or the same settings to resume")
    if compared:
        what = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in compared.items())
        checkpoints = os.path.join(model_dir, "checkpoints")
        if callbacks.checkpoint_epoch(checkpoints) >= config.train.epochs or \
                callbacks.checkpoint_stopped(checkpoints):
            raise ConfigError(f"{path}: this model_dir finished training with other settings "
                              f"({what}); its results are not this recipe's: use a new "
                              f"--model_dir, or the same settings")
        print(f"{model_dir}: continuing with changed settings ({what}); recorded in "
              f"{CHANGES_FILE}", flush=True)
        changes_path = os.path.join(model_dir, CHANGES_FILE)
        history = []
        if tf.io.gfile.exists(changes_path):
            with tf.io.gfile.GFile(changes_path) as f:
                history = json.load(f)
        history.append(dict(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            changes={k: list(v) for k, v in compared.items()}))
        with tf.io.gfile.GFile(changes_path, "w") as f:
            f.write(json.dumps(history, indent=2, default=str))


def compile_model(model, task, config, steps_per_epoch, **compile_kwargs):
    """One optimizer per parameter group, each with its learning rate and schedule."""
    group_optimizers = {
        group: optimizers.make_optimizer(
            config.train, task.learning_rate_schedule(group, lr, steps_per_epoch), group)
        for group, lr in task.group_learning_rates().items()}
    task.compile_model(model, group_optimizers, task.group_variables(model),
                       task.weight_decay(), jit_compile=config.train.jit_compile,
                       **compile_kwargs)


def train_and_evaluate(config, model_dir, strategy=None):
    """Trains config's model, exports it, evaluates it; returns {name: evaluation result}."""
    try:
        return _train_and_evaluate(config, model_dir, strategy)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # layers made later get their own


def _train_and_evaluate(config, model_dir, strategy):
    started = time.time()
    task = task_lib.make_task(config)
    train = config.train
    ensure_data(config)
    meta = schema.read_metadata(config.data.data_dir)
    task.check_data(meta)
    keras.utils.set_random_seed(train.seed)
    keras.mixed_precision.set_global_policy(train.mixed_precision)
    strategy = strategy or distribute.make_strategy(train.strategy)
    task.check_config(strategy.num_replicas_in_sync)
    steps_per_epoch = train.steps_per_epoch or task.steps_per_epoch(meta)
    check_resumable(config, model_dir)  # only settings that can run are saved or compared
    run_config.save_run_config(config, model_dir)
    with strategy.scope():
        model = task.build()
        compile_model(model, task, config, steps_per_epoch)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    initial_epoch = callbacks.restore_checkpoint(model, checkpoint_dir)
    train_ds, val_ds = task.datasets(meta, start_batch=initial_epoch * steps_per_epoch)

    log_dir = os.path.join(model_dir, "tensorboard")
    cbs = [callbacks.StopOnNonFiniteLoss(checkpoint_dir), callbacks.LogLearningRates()]
    if train.progress == "line":
        cbs.append(callbacks.EpochLine(train.epochs))
    cbs += [callbacks.TensorBoard(log_dir, write_graph=False,
                                  update_freq=train.update_freq or max(1, steps_per_epoch // 10)),
            callbacks.WriteHParams(log_dir, config.hparams(), task.run_name())]
    cbs += task.callbacks(model, log_dir, val_ds) if val_ds is not None else []
    # Last, so an epoch is checkpointed only after every other callback accepted it.
    cbs.append(callbacks.EpochCheckpoint(checkpoint_dir))
    print(f"training {task.describe(model)}: {steps_per_epoch} steps x {train.epochs} epochs, "
          f"batch {train.batch_size}, {strategy.num_replicas_in_sync} replica(s) -> {model_dir}"
          + (f" (resuming after epoch {initial_epoch})" if initial_epoch else ""), flush=True)
    history, stopped = None, callbacks.checkpoint_stopped(checkpoint_dir)
    if stopped:
        print(f"{model_dir}: training stopped after epoch {initial_epoch} on purpose (its goals "
              f"were met); not training further", flush=True)
    try:
        if not stopped:
            history = model.fit(train_ds, epochs=train.epochs, initial_epoch=initial_epoch,
                                steps_per_epoch=steps_per_epoch, validation_data=val_ds,
                                callbacks=cbs, verbose=1 if train.progress == "bar" else 0)
    except tf.errors.DataLossError as e:
        pipeline.raise_for_unreadable(task.shard_files(meta), e)

    check = task.training_check(val_ds, history) if history and val_ds is not None else None
    if check:
        print(check[1], flush=True)
    task.export(model, model_dir)
    results = task.evaluate(model_dir)
    for name, result in results.items():
        print(task.summary_line(name, result), flush=True)
    summary = dict(results=results, seconds=round(time.time() - started, 1),
                   inputs=task.input_fingerprint(),
                   optimizer_steps=model.optimizer_steps(), steps_per_epoch=steps_per_epoch,
                   epochs=train.epochs, replicas=strategy.num_replicas_in_sync,
                   # fewer than --epochs where a callback stopped it (GoalCurve: goals met)
                   epochs_run=initial_epoch + len(history.epoch if history else []),
                   training_check=check[0] if check else None)
    report.write_json(os.path.join(model_dir, SUMMARY_FILE), summary)
    return results


def train_or_reuse(config, model_dir):
    """The results of an earlier finished run in model_dir when it was trained with exactly
    this config (settings that change results compared) and the same inputs (a backbone
    file's contents); otherwise train_and_evaluate, which refuses another network and lists
    and records any other change (a changed input file retrains into a new model_dir)."""
    summary_path = os.path.join(model_dir, SUMMARY_FILE)
    if tf.io.gfile.exists(summary_path):
        architecture, compared, _ = run_config.differences(
            config, run_config.load_run_config(model_dir))
        with tf.io.gfile.GFile(summary_path) as f:
            summary = json.load(f)
        task = task_lib.make_task(config)
        if summary.get("inputs", {}) != task.input_fingerprint():
            raise ConfigError(f"{model_dir}: finished with other input files "
                              f"({', '.join(sorted(task.input_fingerprint()))} changed); its "
                              f"results are not this run's: use a new --model_dir")
        wanted = set(task.result_names())
        if not architecture and not compared and wanted <= set(summary["results"]):
            return summary["results"]
    return train_and_evaluate(config, model_dir)


def train_all_attributes(config, model_dir, strategy=None):
    """One network per attribute in turn (model_dir/<attribute>), then the results table."""
    ensure_data(config)
    meta = schema.read_metadata(config.data.data_dir)
    rows = {split: [] for split in config.family.eval_split}
    for attribute in meta["attributes"]:
        results = train_and_evaluate(config.with_values(attribute=attribute),
                                     os.path.join(model_dir, attribute), strategy)
        for split, result in results.items():
            rows[split].append(result)
    for split, split_rows in rows.items():
        table = report.write_table(split_rows, os.path.join(model_dir, f"results_{split}"))
        print(f"\n{config.model} on {config.data.data_dir} / {split}:\n{table}", flush=True)
    return rows
