"""The oracle generator as a study: calibrate it (training.oracle_calibration), save it as a
generator artifact marked "oracle", measure it as the learned generators are measured
(evaluation.generator: sweeps, fine-step pairs, the sweeps sheet) and record one ledger cell
per (image size, seed)."""
import os
import time

import numpy as np

from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.data.synthetic import render
from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES
from relattr_tf.data.synthetic.measure import measure
from relattr_tf.evaluation import generator as generator_eval, report
from relattr_tf.evaluation.ledger import record_of
from relattr_tf.models import oracle_renderer
from relattr_tf.training import cvae, oracle_calibration

# What the evaluation needs of a data directory: the oracle draws the benchmark's own scenes.
BENCHMARK_META = {"dataset": "synthetic", "strength_names": list(ATTRIBUTE_NAMES)}


def benchmark_pictures(size, count=1000, seed=0):
    """(pictures of the numpy renderer, floats in [0, 1], and their measured strengths): the
    sharpness and equal-rate references."""
    rng = np.random.default_rng([seed, 23])
    pictures = np.stack([render.to_uint8(render.render(rng.uniform(size=len(ATTRIBUTE_NAMES)),
                                                       rng, size)) for _ in range(count)])
    return pictures / 255.0, np.stack([measure(p) for p in pictures])


def build_and_record(settings, model_dir, ledger, command, progress=print):
    """settings: image_size, calibration_images, seed, sweep_steps, sweep_samples, eval_pairs.
    A cell the ledger has is skipped. Returns (result, record)."""
    cell = dict(image_size=settings["image_size"], seed=settings["seed"])
    record = ledger.finished(cell, settings)
    if record is not None:
        progress(f"{ledger.path(cell)}: finished")
        return record["metrics"], record
    directory = os.path.join(model_dir, generator_artifact.GENERATOR_DIR)
    started = time.time()
    decoder, statistics, knots = oracle_calibration.calibrated_oracle(
        settings["image_size"], settings["calibration_images"], settings["seed"], progress)
    generator_artifact.save_generator(
        decoder, directory, statistics, oracle_renderer.Z_SIZE, settings["image_size"],
        kind="oracle", extra=dict(z_names=list(oracle_renderer.Z_NAMES), knots=knots))
    decoder, info = generator_artifact.load_generator(directory)
    real, strengths = benchmark_pictures(settings["image_size"])
    result = generator_eval.evaluate_generator(
        decoder, info, BENCHMARK_META, sweep_steps=settings["sweep_steps"],
        sweep_samples=settings["sweep_samples"], pairs=settings["eval_pairs"],
        seed=settings["seed"], real_images=real[:256], real_strengths=strengths)
    generator_eval.write_sweep_sheet(decoder, info, os.path.join(model_dir, cvae.SWEEP_FILE),
                                     seed=settings["seed"])
    result.update(kind="oracle", calibration_images=settings["calibration_images"])
    report.write_json(os.path.join(model_dir, cvae.RESULT_FILE), result)
    record = ledger.write(cell, record_of("generator", ledger.study, cell, command, settings,
                                          result, time.time() - started))
    return result, record
