"""The configuration a run was trained with, as it leaves it: <model_dir>/config.json."""
import dataclasses
import json
import os

import tensorflow as tf

from relattr_tf.config import FAMILIES, Config, ConfigError, DataConfig, TrainConfig, family_of

CONFIG_FILE = "config.json"


def _section_from(cls, values):
    names = {f.name: f for f in dataclasses.fields(cls)}
    kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    return cls(**kept)


def from_json(text, path="config.json"):
    values = json.loads(text)
    if "data" not in values or "train" not in values:
        raise ConfigError(f"{path}: written by an older relattr_tf (no config sections); "
                          f"train into a new --model_dir")
    model = values["model"]
    family = family_of(model)
    section = FAMILIES[family][0]
    return Config(model=model, data=_section_from(DataConfig, values["data"]),
                  train=_section_from(TrainConfig, values["train"]),
                  family=_section_from(section, values.get(family, {})))


def save_run_config(config, model_dir):
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILE), "w") as f:
        f.write(config.to_json())


def load_run_config(model_dir):
    """The Config saved in a model_dir by training."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no trained model here (train with python -m "
                                f"relattr_tf.train --model_dir={model_dir} ...)")
    with tf.io.gfile.GFile(path) as f:
        return from_json(f.read(), path)


def differences(config, other):
    """(architecture changes, other compared changes, uncompared changes) against `other`
    (an earlier run), each {name: (before, now)}."""
    fields = {"model": dict(architecture=True, compared=True)}
    for section in list(config.sections().values()) + list(other.sections().values()):
        fields.update({f.name: f.metadata for f in dataclasses.fields(section)})
    before, now = other.values(), config.values()
    changes = ({}, {}, {})
    for name in sorted(set(before) | set(now)):
        if before.get(name) != now.get(name):
            meta = fields[name]
            kind = 0 if meta["architecture"] else 1 if meta["compared"] else 2
            changes[kind][name] = (before.get(name), now.get(name))
    return changes
