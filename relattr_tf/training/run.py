"""train_and_evaluate(config, model_dir): one pair ranker for one attribute, end to end.

Resumable: a crash-safe checkpoint is written at every epoch end under
<model_dir>/checkpoints, so rerunning the same command after a crash (kill -9 included) continues
from the last finished epoch. At the end the network is exported and evaluated.
"""
import json
import logging
import os
import shlex
import time

import keras
import tensorflow as tf

from relattr_tf import evaluation, models
from relattr_tf.config import load_run_config
from relattr_tf.data import pipeline, schema
from relattr_tf.models.vgg16 import load_imagenet_weights
from relattr_tf.training import callbacks, distribute, export, optimizers
from relattr_tf.training.ranker import PairwiseRanker


class ConfigError(ValueError):
    """A configuration that cannot run, with a one-line message."""


def ensure_data(config):
    """Builds the embedded benchmark when asked to and data_dir holds none."""
    if tf.io.gfile.exists(schema.metadata_path(config.data_dir)) or not config.make_data:
        return
    from beam_jobs import make_synthetic
    argv = [f"--output_dir={config.data_dir}"] + shlex.split(config.make_data_args)
    print(f"no data in {config.data_dir}: building the embedded benchmark "
          f"(python -m beam_jobs.make_synthetic {' '.join(argv)})", flush=True)
    make_synthetic.run(argv)


def check_resumable(config, model_dir):
    """Refuses to resume a model_dir that holds a different network."""
    path = os.path.join(model_dir, "config.json")
    if not tf.io.gfile.exists(path):
        return
    previous = load_run_config(model_dir).architecture()
    changed = {k: (previous[k], v) for k, v in config.architecture().items() if previous[k] != v}
    if changed:
        what = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items())
        raise ConfigError(f"{path}: this model_dir holds another network ({what}); use a new "
                          f"--model_dir or the same settings to resume")


def check_config(config, replicas):
    """One-line errors for settings that cannot build or split."""
    if config.image_size < 32:
        raise ConfigError(f"--image_size={config.image_size}: VGG16 halves the size five "
                          f"times, so it must be at least 32")
    if config.width <= 0:
        raise ConfigError(f"--width={config.width}: must be positive (1 = VGG16)")
    if config.batch_size % replicas:
        raise ConfigError(f"--batch_size={config.batch_size} is the global batch: it must "
                          f"divide evenly over the {replicas} replicas")


def build_ranker(config, steps_per_epoch):
    network = models.build_model(
        config.model, image_size=config.image_size, width=config.width, seed=config.seed,
        reduction=config.reduction, cross_filters=config.cross_filters,
        cross_depth=config.cross_depth, head_units=config.head_units, head_pool=config.head_pool)
    if config.backbone_weights:
        count = load_imagenet_weights(models.trunk_of(network), config.backbone_weights)
        logging.info("loaded %d VGG16 conv layers from %s", count, config.backbone_weights)
    ranker = PairwiseRanker(network, name=f"{config.model}_ranker")
    schedule = lambda lr: optimizers.step_schedule(lr, config.lr_drop_epochs,
                                                   config.lr_drop_factor, steps_per_epoch)
    ranker.compile(
        trunk_optimizer=optimizers.make_optimizer(config.optimizer, schedule(config.trunk_lr),
                                                  config.weight_decay, name_suffix="_trunk"),
        head_optimizer=optimizers.make_optimizer(config.optimizer, schedule(config.head_lr),
                                                 config.weight_decay, name_suffix="_head"),
        jit_compile=config.jit_compile)
    return ranker


def _sample_pairs(dataset, count):
    for (image_a, image_b), target in dataset.take(1):
        return image_a[:count].numpy(), image_b[:count].numpy(), target[:count].numpy()
    return None


def train_and_evaluate(config, model_dir, strategy=None):
    """Trains config.model on config.attribute, exports it, evaluates the eval splits.

    Returns {split: evaluation result}.
    """
    started = time.time()
    ensure_data(config)
    meta = schema.read_metadata(config.data_dir)
    for split in (config.train_split,) + tuple(config.eval_splits):
        schema.check_attribute_split(meta, config.data_dir, config.attribute, split)
    check_resumable(config, model_dir)
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, "config.json"), "w") as f:
        f.write(config.to_json())

    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    strategy = strategy or distribute.make_strategy(config.strategy)
    check_config(config, strategy.num_replicas_in_sync)
    input_config = config.input_config()
    train_pairs = pipeline.split_size(config.data_dir, config.attribute, config.train_split, meta)
    examples = train_pairs * (2 if config.swap else 1)
    steps_per_epoch = config.steps_per_epoch or max(1, examples // config.batch_size)
    if examples < config.batch_size:
        raise ConfigError(f"{config.data_dir}: {config.attribute}/{config.train_split} has "
                          f"{train_pairs} pairs, fewer than one batch of {config.batch_size}")
    train_ds = pipeline.make_dataset(config.data_dir, config.attribute, config.train_split,
                                     input_config, training=True, seed=config.seed,
                                     repeat=True, meta=meta)
    val_split = config.val_split or config.eval_splits[0]
    val_ds = pipeline.make_dataset(config.data_dir, config.attribute, val_split, input_config,
                                   training=False, meta=meta)
    if config.val_steps:
        val_ds = val_ds.take(config.val_steps)

    with strategy.scope():
        ranker = build_ranker(config, steps_per_epoch)
        blank = tf.zeros((1, config.image_size, config.image_size, 3))
        ranker((blank, blank))  # built before restoring into it
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    initial_epoch = callbacks.restore_checkpoint(ranker, checkpoint_dir)

    log_dir = os.path.join(model_dir, "tensorboard")
    run_name = f"{config.model}-{config.attribute}-seed{config.seed}"
    cbs = [callbacks.StopOnNonFiniteLoss(checkpoint_dir), callbacks.LogLearningRates()]
    if config.progress == "line":
        cbs.append(callbacks.EpochLine(config.epochs))
    cbs += [keras.callbacks.TensorBoard(log_dir, update_freq=max(1, steps_per_epoch // 10),
                                        write_graph=False),
            callbacks.WriteHParams(log_dir, config.hparams(), run_name)]
    sample = _sample_pairs(val_ds, config.tensorboard_pairs) if config.tensorboard_pairs else None
    if sample is not None:
        cbs.append(callbacks.PairImages(log_dir, *sample))
    # Last, so an epoch is checkpointed only after every other callback accepted it.
    cbs.append(callbacks.EpochCheckpoint(checkpoint_dir))
    print(f"training {config.model} ({ranker.network.count_params():,} parameters) on "
          f"{config.attribute}/{config.train_split}: "
          f"{train_pairs} pairs, {steps_per_epoch} steps x {config.epochs} epochs, batch "
          f"{config.batch_size}, {strategy.num_replicas_in_sync} replica(s) -> {model_dir}"
          + (f" (resuming after epoch {initial_epoch})" if initial_epoch else ""), flush=True)
    try:
        ranker.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch,
                   steps_per_epoch=steps_per_epoch, validation_data=val_ds, callbacks=cbs,
                   verbose=1 if config.progress == "bar" else 0)
    except tf.errors.OpError as e:
        pipeline.raise_for_unreadable(
            pipeline.shard_files(config.data_dir, config.attribute, config.train_split, meta), e)

    export.export_network(ranker.network, model_dir, config.image_size)
    results = {}
    for split in config.eval_splits:
        results[split] = evaluation.evaluate_split(model_dir, config.data_dir, config.attribute,
                                                   split, skip_corrupt=config.skip_corrupt)
        print(evaluation.summary_line(results[split]), flush=True)
    summary = dict(results=results, seconds=round(time.time() - started, 1),
                   optimizer_steps=int(ranker.trunk_optimizer.iterations.numpy()),
                   steps_per_epoch=steps_per_epoch, epochs=config.epochs,
                   replicas=strategy.num_replicas_in_sync)
    with tf.io.gfile.GFile(os.path.join(model_dir, "summary.json"), "w") as f:
        f.write(json.dumps(summary, indent=2, sort_keys=True, default=float))
    return results


def train_or_reuse(config, model_dir):
    """train_and_evaluate, or the results of an earlier finished run in model_dir."""
    summary = os.path.join(model_dir, "summary.json")
    if tf.io.gfile.exists(summary):
        with tf.io.gfile.GFile(summary) as f:
            results = json.load(f)["results"]
        if set(config.eval_splits) <= set(results):
            return results
    return train_and_evaluate(config, model_dir)


def train_all_attributes(config, model_dir, strategy=None):
    """One network per attribute in turn (model_dir/<attribute>), then the results table."""
    import dataclasses
    ensure_data(config)
    meta = schema.read_metadata(config.data_dir)
    rows = {split: [] for split in config.eval_splits}
    for attribute in meta["attributes"]:
        results = train_and_evaluate(dataclasses.replace(config, attribute=attribute),
                                     os.path.join(model_dir, attribute), strategy)
        for split, result in results.items():
            rows[split].append(result)
    tables = {}
    for split, split_rows in rows.items():
        tables[split] = evaluation.write_table(split_rows, os.path.join(model_dir,
                                                                        f"results_{split}"))
        print(f"\n{config.model} on {config.data_dir} / {split}:\n{tables[split]}", flush=True)
    return rows
