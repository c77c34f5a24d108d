"""The benchmark's loop: one JSON line per measurement (relattr_tf.bench's flags become a
BenchOptions). Compare with a plain PyTorch model on the same machine at the same time; figures
from a busy machine are not comparable."""
import dataclasses
import json
import os
import platform
import resource
import tempfile

import apache_beam
import keras
import numpy as np
import tensorflow as tf

from beam_jobs import make_synthetic
from relattr_tf.evaluation import machine
from relattr_tf.experiments import bench_timers as timers
from relattr_tf.training import distribute


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    batch_size: int = 24
    beam_images: int = 2000
    data_dir: str = ""
    generated_batch: int = 12
    generator_dir: str = ""
    jit_compile: bool = False
    mixed_precision: str = "float32"
    models: tuple = ("dacrl", "ranknet", "deepstn")
    only: tuple = ("env", "peak", "models", "replicas", "attic", "reader", "beam")
    quick: bool = False
    sizes: tuple = (64, 112)
    steps: int = 10
    steps_per_execution: int = 1
    widths: tuple = (1.0, 0.25)


def emit(**record):
    print(json.dumps(record, sort_keys=True), flush=True)


def peak_memory_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def environment():
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
    return dict(measurement="environment", device=", ".join(details) or "CPU",
                **machine.cpu_description(), python=platform.python_version(),
                tensorflow=tf.__version__, keras=keras.__version__, apache_beam=apache_beam.__version__,
                numpy=np.__version__,
                onednn_cpu_kernels=os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0",
                intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads() or "auto")


def run_bench(options):
    """Every measurement options.only names, printed as JSON lines."""
    widths = [0.25] if options.quick else [float(w) for w in options.widths]
    sizes = [64] if options.quick else [int(s) for s in options.sizes]
    steps = 4 if options.quick else options.steps
    env = environment()
    if "env" in options.only:
        emit(**env)
    matmul_peak = datasheet_peak = None
    if "peak" in options.only:
        matmul_peak = timers.measure_matmul_peak(options.mixed_precision)
        datasheet_peak = timers.datasheet_peak_flops(env["device"], options.mixed_precision)
        emit(measurement="peak", device=env["device"], mixed_precision=options.mixed_precision,
             matmul_gflops_per_s=round(matmul_peak / 1e9, 1),
             datasheet_gflops_per_s=datasheet_peak and round(datasheet_peak / 1e9))
    if "models" in options.only:
        for model in options.models:
            for width in widths:
                for size in sizes:
                    (train, train_median), (infer, infer_median), params, flops = \
                        timers.time_model(model, size, width, steps, options.batch_size,
                                          options.mixed_precision, options.jit_compile,
                                          options.steps_per_execution)
                    emit(measurement="model", model=model, size=size, width=width,
                         batch=options.batch_size, train_pairs_per_s=train,
                         train_pairs_per_s_median=train_median, infer_pairs_per_s=infer,
                         infer_pairs_per_s_median=infer_median, params=params,
                         forward_gflops_per_pair=round(flops / 1e9, 4),
                         train_gflops_per_s=round(train * 3 * flops / 1e9, 1),
                         infer_gflops_per_s=round(infer * flops / 1e9, 1),
                         train_of_matmul_peak=timers.utilisation(train, 3 * flops, matmul_peak),
                         infer_of_matmul_peak=timers.utilisation(infer, flops, matmul_peak),
                         train_mfu=timers.utilisation(train, 3 * flops, datasheet_peak),
                         infer_mfu=timers.utilisation(infer, flops, datasheet_peak),
                         mixed_precision=options.mixed_precision, jit_compile=options.jit_compile,
                         steps_per_execution=options.steps_per_execution, steps=steps)
        emit(measurement="peak_memory_after_models", peak_rss_mb=peak_memory_mb())
    devices = distribute.replica_devices() if "replicas" in options.only else []
    if len(devices) >= 2:
        model, size, width = options.models[0], max(sizes), widths[0]
        one, two = timers.time_replica_speedup(model, size, width, steps, options.batch_size,
                                        options.mixed_precision, options.jit_compile, devices)
        emit(measurement="replica_speedup", model=model, size=size, width=width,
             batch_per_replica=options.batch_size, devices=devices[:2],
             train_pairs_per_s_1_replica=one, train_pairs_per_s_2_replicas=two,
             speedup=round(two / one, 2),
             note=("logical CPU devices share the same cores: exercises the code, says nothing "
                   "about scaling") if "CPU" in devices[0] else "")
    if "attic" in options.only:
        width, size = widths[-1], sizes[0]
        both, ranker_only = timers.time_attic_step(size, width, steps, options.batch_size,
                                            options.generated_batch, options.generator_dir)
        emit(measurement="attic_step", ranker="deepstn", size=size, width=width,
             real_batch=options.batch_size, generated_batch=options.generated_batch,
             seconds_per_two_player_step=round(both, 3),
             seconds_per_ranker_step=round(ranker_only, 3),
             ratio=round(both / ranker_only, 2), steps=steps,
             generator=options.generator_dir or "untrained, configs/cvae_synth.flags' size")
    if "reader" in options.only:
        data_dir = options.data_dir
        with tempfile.TemporaryDirectory() as tmp:
            if not data_dir:
                data_dir = os.path.join(tmp, "synthetic")
                make_synthetic.run([f"--output_dir={data_dir}", "--attributes=brightness",
                                    "--num_images=1000"])
            emit(measurement="reader",
                 pairs_per_s=timers.time_reader(data_dir, options.batch_size),
                 batch=options.batch_size, augment="flip,translate", swap=True, image_size=64)
    if "beam" in options.only:
        count = 300 if options.quick else options.beam_images
        per_second, read, seconds = timers.time_beam_conversion(count)
        emit(measurement="beam_conversion", images_per_s=per_second, images=read,
             seconds=seconds, job="convert_lfw10 (250x250 JPEG, DirectRunner)")
    emit(measurement="peak_memory", peak_rss_mb=peak_memory_mb())
