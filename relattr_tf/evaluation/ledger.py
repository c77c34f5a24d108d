"""Result ledgers: one small JSON per finished cell of a study, under <results_dir>/<study>/.

A cell is one trained-and-evaluated setting (model x attribute x pair set x seed; for ATTIC's
experiment, method x attribute x seed). Its record holds the command, the run's config, the
data's hash, the hashes of the input files (the trunk, the generator), the machine (CPU model
and flags), the runtime and the metrics. The ledger is committed with the project (small text,
never weights); a rerun of the study's command skips every finished cell, so a study can be
continued on another machine by running the same command there.

    ledger = Ledger("results", "ablation_pretrained")
    record = ledger.finished(cell)            # None, or the record of an earlier run
    ledger.write(cell, record_of(...))        # when the cell has finished
"""
import dataclasses
import hashlib
import json
import os
import re
import time

import tensorflow as tf

from relattr_tf.config import ConfigError
from relattr_tf.evaluation import machine, report

MAX_NAME = 200  # file systems allow 255 bytes; ".json" and ".tmp" follow
CELL_ORDER = ("pair_set", "method", "block", "attribute", "model", "split", "seed")


def _plain(value):
    """JSON's view of a value (tuples become lists), for comparing configs."""
    return json.loads(json.dumps(value, default=str))


def _defaults(config):
    """{setting: its default} of a Config (nothing for a plain dict): a setting added after a
    record was written counts as unchanged while it holds its default."""
    if not hasattr(config, "sections"):
        return {}
    return _plain({f.name: f.default if f.default is not dataclasses.MISSING
                   else f.default_factory()
                   for section in config.sections().values()
                   for f in dataclasses.fields(section)})


def cell_name(cell):
    """The cell's file name: its keys and values; one past MAX_NAME characters (a list of
    heads, say) is cut there and ends in a hash of the whole, so it stays unique."""
    keys = [k for k in CELL_ORDER if k in cell] + sorted(k for k in cell if k not in CELL_ORDER)
    name = re.sub(r"[^A-Za-z0-9_.=-]", "_", "__".join(f"{k}-{cell[k]}" for k in keys))
    if len(name) > MAX_NAME:
        whole = json.dumps(_plain(cell), sort_keys=True)  # before any character is replaced
        name = name[:MAX_NAME - 14] + "__" + hashlib.sha256(whole.encode()).hexdigest()[:12]
    return name


def record_of(kind, study, cell, command, config, metrics, seconds, data_dir=None,
              data_sha256=None, inputs=None, settings=None):
    """A ledger record (see the module docstring). kind: the study's shape (evaluation.studies);
    config: the settings that change results (Config.compared_values()), a dict; settings:
    the study's own that the config does not hold (the split evaluated, ATTIC's rounds)."""
    values = config.compared_values() if hasattr(config, "compared_values") else config
    return dict(kind=kind, study=study, cell=cell, command=command, config=_plain(values),
                settings=_plain(settings or {}), data_dir=data_dir, data_sha256=data_sha256,
                inputs=_plain(inputs or {}),
                machine=machine.cpu_description(), seconds=round(float(seconds), 1),
                metrics=_plain(metrics), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()))


class Ledger:
    """The cells of one study in <results_dir>/<study>/."""

    def __init__(self, results_dir, study):
        if not study or "/" in study or study.startswith("."):
            raise ConfigError(f"--study={study!r}: a plain name (a folder of --results_dir)")
        self.study = study
        self.directory = os.path.join(results_dir, study)

    def path(self, cell):
        return os.path.join(self.directory, cell_name(cell) + ".json")

    def finished(self, cell, config=None, settings=None, inputs=None, data_sha256=None):
        """The record of a finished cell, or None. A record made with another recipe (a
        config setting, a study setting, an input file's hash, the data's hash: each compared
        when given) is a one-line error naming what changed: its figures are not this run's."""
        path = self.path(cell)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
        changed = []
        for key, now in (("config", config), ("settings", settings), ("inputs", inputs)):
            if now is None:
                continue
            defaults = _defaults(now)
            now = _plain(now.compared_values() if hasattr(now, "compared_values") else now)
            before = record.get(key, {})
            changed += sorted(k for k in set(now) | set(before)
                              if now.get(k) != before.get(k, defaults.get(k)))
        if data_sha256 is not None and record.get("data_sha256") != data_sha256:
            changed.append(f"the data in {record.get('data_dir')}")
        if changed:
            raise ConfigError(f"{path}: this cell finished with another recipe "
                              f"({', '.join(changed)} changed); use another --study, or the "
                              f"same settings and inputs")
        return record

    def write(self, cell, record):
        tf.io.gfile.makedirs(self.directory)
        report.write_json(self.path(cell), record)
        return record

    def records(self):
        """Every record of the study, in file-name order."""
        if not tf.io.gfile.isdir(self.directory):
            raise FileNotFoundError(f"{self.directory}: no ledger here (an experiment command "
                                    f"writes it, e.g. python -m relattr_tf.ablation --study="
                                    f"{self.study})")
        out = []
        for name in sorted(tf.io.gfile.listdir(self.directory)):
            if name.endswith(".json"):
                with tf.io.gfile.GFile(os.path.join(self.directory, name)) as f:
                    out.append(json.load(f))
        return out
