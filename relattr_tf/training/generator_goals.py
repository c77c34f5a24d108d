"""--goal_eval_every: a generator evaluated during training against the layered generator's
goals (evaluation.generator_table.GOALS, and the reconstruction MSE at most the 2 px blur's),
every N epochs into `<model_dir>/goal_curve.json` and TensorBoard (run `goals`), and training
stopped once every goal is met; the final evaluation adds the last epoch's entry, and
eval_generator.json (so the ledger) carries the curve."""
import json
import os
import time

import keras
import tensorflow as tf

from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.data import schema
from relattr_tf.evaluation import generator as generator_eval, generator_table, report
from relattr_tf.training import callbacks

GOAL_CURVE_FILE = "goal_curve.json"
FIGURES = tuple(key for key, *_ in generator_table.GOALS)


class GoalCurve(keras.callbacks.Callback):
    """Every `every` epochs but the last (the final evaluation measures that one):
    evaluate(logs) gives a generator's figures (evaluation.generator), missed(result) the goals
    they miss. Each evaluation goes to a JSON curve at `path` (a resumed run keeps its earlier
    epochs' entries) and to TensorBoard; once no goal is missed, training stops, and the
    checkpoint says so (EpochCheckpoint, after this callback)."""

    def __init__(self, evaluate, missed, every, path, log_dir, figures):
        super().__init__()
        self.evaluate, self.missed, self.every = evaluate, missed, int(every)
        self.path, self.figures = path, tuple(figures)
        self.writer = tf.summary.create_file_writer(f"{log_dir}/goals")
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:  # a fresh or resumed run: later entries are not its own
            self.first_epoch = epoch
            if tf.io.gfile.exists(self.path):
                write_goal_curve(self.path, [e for e in read_goal_curve(self.path)
                                             if e["epoch"] <= epoch])

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or epoch + 1 >= self.params.get("epochs", 0):
            return
        started = time.time()
        result = self.evaluate(logs or {})
        missed = self.missed(result)
        entry = goal_entry(epoch + 1, result, missed, self.figures, time.time() - started)
        write_goal_curve(self.path, [e for e in read_goal_curve(self.path)
                                     if e["epoch"] < epoch + 1] + [entry])
        with self.writer.as_default(step=epoch + 1), tf.summary.record_if(True):
            tf.summary.scalar("goals_missed", len(missed))
            for name, figures in entry["attributes"].items():
                for key, value in figures.items():
                    if value is not None:
                        tf.summary.scalar(f"{name}/{key}", value)
        self.writer.flush()
        print(f"goals after epoch {epoch + 1}: {len(missed)} of the goals missed "
              f"({entry['seconds']:.0f}s)" + ("; every goal met, stopping" if not missed else ""),
              flush=True)
        if not missed:
            self.model.stop_training = True


def goal_entry(epoch, result, missed, figures, seconds):
    """One entry of a goal curve: the goals' figures of a generator's evaluation."""
    plain = lambda v: None if v is None or v != v else float(v)  # noqa: E731 (NaN: null)
    return dict(epoch=int(epoch), goals_missed=len(missed), seconds=round(float(seconds), 1),
                reconstruction_mse=plain(result.get("heldout_reconstruction_mse")),
                attributes={name: {key: plain(entry.get(key)) for key in figures}
                            for name, entry in result["attributes"].items()})


def read_goal_curve(path):
    """GoalCurve's entries, oldest first ([] before the first evaluation)."""
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_goal_curve(path, entries):
    report.write_json(path, entries)


def goal_curve_callback(task, model, log_dir):
    """The GoalCurve of a generator task's model (training.cvae, training.layered_cvae)."""
    config = task.config
    meta = schema.read_metadata(config.data.data_dir)
    real, strengths = task.validation_examples(meta)
    blur = generator_eval.blur_references(real)
    net = config.family

    def evaluate(logs):  # as the final evaluation measures the export, with val_mse
        info = generator_artifact.generator_info(
            task.artifact_statistics(model), model.decoder.inputs[1].shape[-1],
            config.data.image_size)
        result = generator_eval.evaluate_generator(
            model.decoder, info, meta, sweep_steps=net.sweep_steps,
            sweep_samples=net.sweep_samples, pairs=net.eval_pairs, seed=config.train.seed,
            real_images=real, real_strengths=strengths)
        return dict(result, heldout_reconstruction_mse=logs.get("val_mse"), **blur)
    return GoalCurve(evaluate, generator_table.goals_missed, net.goal_eval_every,
                     os.path.join(os.path.dirname(log_dir), GOAL_CURVE_FILE), log_dir, FIGURES)


def final_goal_curve(config, model_dir, result, seconds):
    """The run's goal curve ending with the final evaluation's entry (GoalCurve leaves the
    last epoch to it); [] without --goal_eval_every."""
    if not config.family.goal_eval_every:
        return []
    path = os.path.join(model_dir, GOAL_CURVE_FILE)
    epoch = callbacks.checkpoint_epoch(os.path.join(model_dir, "checkpoints"))
    curve = [e for e in read_goal_curve(path) if e["epoch"] < epoch]
    curve.append(goal_entry(epoch, result, generator_table.goals_missed(result), FIGURES,
                            seconds))
    write_goal_curve(path, curve)
    return curve
