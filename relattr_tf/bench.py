"""Throughput benchmark: one JSON line per measurement.

    python -m relattr_tf.bench            # models at 64 and 112 px, widths 1 and 0.25
    python -m relattr_tf.bench --quick    # width 0.25 at 64 px, fewer steps
    python -m relattr_tf.bench --only=reader,beam

Measures training and inference pairs/s (batch 24) of each pair model, the tf.data reader's
pairs/s (decode + augment + swap + batch) on the embedded benchmark, the Beam conversion's
images/s (LFW-10 layout, JPEG decode check, shards written), the peak memory of the process,
and the device and versions. Compare with a plain PyTorch model on the same machine at the same
time; figures from a busy machine are not comparable.

FLOPs utilisation: each model line gives its forward FLOPs per pair (TensorFlow's graph
profiler), the achieved model FLOP/s (training counts 3x forward) and that as a fraction of
the device's peak: the datasheet peak on known GPUs (MFU), and everywhere the measured matmul
peak (the `peak` line), which is what the device's kernels can reach here. Where two devices
exist (GPUs, or `--cpu_devices=2` to exercise the code on CPU) the `replica_speedup` line gives
training pairs/s on 2 replicas (MirroredStrategy, batch 24 per replica) over 1.
"""
import json
import os
import platform
import re
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

flags.DEFINE_boolean("quick", False, "Width 0.25 at 64 px only, fewer steps.")
flags.DEFINE_list("only", ["env", "peak", "models", "replicas", "attic", "reader", "beam"],
                  "Which measurements.")
flags.DEFINE_string("generator_dir", "", "ATTIC step: a generator artifact ('' = an untrained "
                    "decoder of configs/cvae_synth.flags' size).")
flags.DEFINE_integer("generated_batch", 12, "ATTIC step: generated pairs per step.",
                     lower_bound=1)
flags.DEFINE_list("models", ["dacrl", "ranknet", "deepstn"], "Pair models to time.")
flags.DEFINE_list("sizes", ["64", "112"], "Image sizes.")
flags.DEFINE_list("widths", ["1", "0.25"], "VGG16 width multipliers.")
flags.DEFINE_integer("batch_size", 24, "Pairs per batch.", lower_bound=1)
flags.DEFINE_integer("steps", 10, "Timed steps per model.", lower_bound=2)
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy for the model timings.")
flags.DEFINE_boolean("jit_compile", False, "XLA-compile the model steps.")
flags.DEFINE_integer("steps_per_execution", 1, "Keras steps per tf.function call.",
                     lower_bound=1)
flags.DEFINE_string("data_dir", "", "Embedded benchmark for the reader ('' = build a small one).")
flags.DEFINE_integer("beam_images", 2000, "Images in the conversion benchmark's fixture.",
                     lower_bound=2)
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices (exercises the "
                     "2-replica measurement without GPUs; its speed-up then means nothing).",
                     lower_bound=1, upper_bound=64)
flags.register_validator("sizes", lambda v: all(s.isdigit() and int(s) >= 32 for s in v),
                         "--sizes: image sizes of at least 32")
flags.register_validator("widths", lambda v: all(_positive_number(w) for w in v),
                         "--widths: positive numbers")
FLAGS = flags.FLAGS


def _positive_number(text):
    try:
        return float(text) > 0
    except ValueError:
        return False


def emit(**record):
    print(json.dumps(record, sort_keys=True), flush=True)


def peak_memory_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def environment():
    import keras
    import numpy as np
    import tensorflow as tf
    import apache_beam
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
    from relattr_tf import machine
    return dict(measurement="environment", device=", ".join(details) or "CPU",
                **machine.cpu_description(), python=platform.python_version(),
                tensorflow=tf.__version__, keras=keras.__version__, apache_beam=apache_beam.__version__,
                numpy=np.__version__,
                onednn_cpu_kernels=os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0",
                intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads() or "auto")


def _step_timer():
    """Keras callback recording the wall time at the end of every training batch."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    return StepTimer()


def _rates(seconds_per_call, pairs_per_call):
    """(mean, median) pairs/s over timed calls: the mean is what a run gets, the median is robust
    to a busy moment on a shared machine."""
    seconds = sorted(seconds_per_call)
    median = seconds[len(seconds) // 2]
    return (round(pairs_per_call * len(seconds) / sum(seconds), 2),
            round(pairs_per_call / median, 2))


def _random_batch(batch_size, size):
    import tensorflow as tf
    rng = tf.random.Generator.from_seed(0)
    pair = (rng.uniform((batch_size, size, size, 3)), rng.uniform((batch_size, size, size, 3)))
    target = tf.cast(rng.uniform((batch_size,), 0, 3, tf.int32), tf.float32) / 2
    return pair, target


def time_training(ranker, batch_size, size, steps, steps_per_execution=1, warmup=2):
    """(mean, median) training pairs/s of one `fit` call on a repeated random batch.

    One `fit` call, as in a real run: a second `fit` on the same model would start a new input
    iterator, and after one is dropped mid-stream TensorFlow can leave the next one's steps
    running on a single core (measured here: 47 instead of 90 pairs/s at width 0.25).
    """
    import tensorflow as tf
    data = tf.data.Dataset.from_tensors(_random_batch(batch_size, size)).repeat()
    calls = max(steps // steps_per_execution, 1)
    timer = _step_timer()  # its logs are converted to numbers, so a GPU step has finished
    ranker.fit(data, steps_per_epoch=(warmup + calls) * steps_per_execution, epochs=1,
               verbose=0, callbacks=[timer])
    ends = timer.ends[warmup - 1:]
    return _rates([b - a for a, b in zip(ends, ends[1:])], batch_size * steps_per_execution)


def time_inference(network, batch_size, size, calls, jit_compile, warmup=2):
    """(mean, median) inference pairs/s of the network's forward pass."""
    import tensorflow as tf
    pair, _ = _random_batch(batch_size, size)
    predict = tf.function(lambda a, b: network((a, b), training=False), jit_compile=jit_compile)
    for _ in range(warmup):
        predict(*pair).numpy()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        predict(*pair).numpy()
        seconds.append(time.perf_counter() - started)
    return _rates(seconds, batch_size)


def build_ranker(model, size, width, policy, jit_compile, steps_per_execution=1, strategy=None):
    """A compiled PairwiseRanker as training builds it (the paper's recipe, one optimizer per
    parameter group)."""
    import keras
    import tensorflow as tf
    from relattr_tf.config import Config, DataConfig, RankerConfig, TrainConfig
    from relattr_tf.training import ranker as ranker_lib, run
    keras.mixed_precision.set_global_policy(policy)  # layers keep the policy they were built with
    config = Config(model=model, data=DataConfig(image_size=size),
                    train=TrainConfig(jit_compile=jit_compile, mixed_precision=policy),
                    family=RankerConfig(width=width))
    with (strategy or tf.distribute.get_strategy()).scope():
        task = ranker_lib.RankerTask(config)
        ranker = task.build()
        run.compile_model(ranker, task, config, steps_per_epoch=1000,
                          steps_per_execution=steps_per_execution)
    keras.mixed_precision.set_global_policy("float32")
    return ranker


def time_attic_step(size, width, steps, batch_size, generated_batch, generator_dir=""):
    """Seconds per ATTIC two-player step (control step + ranker step on batch_size real and
    generated_batch generated pairs) and per plain DeepSTN step on the same real batch, timed
    one after the other in this process."""
    import keras
    from relattr_tf.config import AtticConfig, Config, DataConfig, TrainConfig
    from relattr_tf.training import attic, run
    with tempfile.TemporaryDirectory() as tmp:
        if not generator_dir:
            from relattr_tf.models import cvae
            from relattr_tf.training.cvae import save_generator
            names = ["brightness", "warmth", "contrast", "size", "elongation", "pointy",
                     "stripes", "tilt"]
            decoder = cvae.build_decoder(64, len(names), 64, width=0.25, seed=0)
            generator_dir = os.path.join(tmp, "generator")
            save_generator(decoder, generator_dir, dict(
                names=names, mean=[0.5] * 8, std=[0.2] * 8, min=[0.0] * 8, max=[1.0] * 8),
                64, 64)
        config = Config(model="attic", data=DataConfig(image_size=size), train=TrainConfig(),
                        family=AtticConfig(width=width, generator_dir=generator_dir,
                                           generated_batch=generated_batch))
        task = attic.AtticTask(config)
        model = task.build()
        run.compile_model(model, task, config, steps_per_epoch=1000)
        two_player = time_training(model, batch_size, size, steps)[0]
        keras.backend.clear_session()
        plain = build_ranker("deepstn", size, width, "float32", False)
        ranker_only = time_training(plain, batch_size, size, steps)[0]
    return batch_size / two_player, batch_size / ranker_only


def forward_flops_per_pair(network, size):
    """Forward FLOPs of one pair (a multiply-add counts 2), from TensorFlow's graph profiler."""
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants
    spec = tf.TensorSpec((1, size, size, 3), tf.float32)
    forward = tf.function(lambda a, b: network((a, b), training=False))
    graph = convert_to_constants.convert_variables_to_constants_v2(
        forward.get_concrete_function(spec, spec)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


# Dense datasheet peaks in TFLOP/s: (float32 as TensorFlow runs it, which is TF32 on Ampere and
# later; float16/bfloat16). Matched in order as whole words of the device name, so "H100 PCIe"
# comes before "H100".
GPU_PEAK_TFLOPS = (("H100 PCIe", 378, 756), ("H100 NVL", 417, 835), ("H100", 495, 989),
                   ("H200", 495, 989), ("A100", 156, 312), ("L4", 60, 121),
                   ("V100", 15.7, 125), ("T4", 8.1, 65))


def datasheet_peak_flops(device_name, policy):
    for name, float32, half in GPU_PEAK_TFLOPS:
        if re.search(rf"\b{name}\b", device_name):
            return (float32 if policy == "float32" else half) * 1e12
    return None


def measure_matmul_peak(policy, calls=5):
    """Best FLOP/s of one square matmul in the policy's compute dtype on the default device: a
    ceiling for what this device's kernels reach on a large, simple operation."""
    import tensorflow as tf
    dtype = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16,
             "mixed_float16": tf.float16}[policy]
    n = 8192 if tf.config.list_logical_devices("GPU") else 3072
    a, b = (tf.cast(tf.random.uniform((n, n)), dtype) for _ in range(2))
    matmul = tf.function(lambda a, b: tf.matmul(a, b)[0, 0])
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best


def time_model(model, size, width, steps, batch_size, policy, jit_compile, steps_per_execution):
    """Training and inference pairs/s on random pairs (warm-up calls excluded), and FLOPs."""
    ranker = build_ranker(model, size, width, policy, jit_compile, steps_per_execution)
    train = time_training(ranker, batch_size, size, steps, steps_per_execution)
    infer = time_inference(ranker.network, batch_size, size, max(steps, steps_per_execution),
                           jit_compile)
    flops = forward_flops_per_pair(ranker.network, size)
    return train, infer, ranker.network.count_params(), flops


def utilisation(pairs_per_s, flops_per_pair, peak):
    return round(pairs_per_s * flops_per_pair / peak, 3) if peak else None


def time_replica_speedup(model, size, width, steps, batch_size, policy, jit_compile, devices):
    """Training pairs/s on 1 and on 2 replicas (MirroredStrategy, `batch_size` per replica)."""
    import tensorflow as tf
    rates = []
    for count in (1, 2):
        strategy = tf.distribute.MirroredStrategy(devices[:count])
        ranker = build_ranker(model, size, width, policy, jit_compile, strategy=strategy)
        rates.append(time_training(ranker, batch_size * count, size, steps)[0])
    return rates


def time_reader(data_dir, batch_size, seconds=5.0):
    """Training pairs/s of the reader (decode or gather, flip + translate, swap, batch)."""
    from relattr_tf.data import pipeline
    config = pipeline.InputConfig(batch_size=batch_size, image_size=64)
    attribute = "brightness"
    ds = pipeline.make_dataset(data_dir, attribute, "train", config, training=True, seed=0)
    iterator = iter(ds)
    for _ in range(20):  # fills the prefetch buffers
        next(iterator)
    started, batches = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        next(iterator)
        batches += 1
    return round(batches * batch_size / (time.perf_counter() - started), 1)


def write_lfw10_folder(root, num_images, pairs_per_split=500):
    """A folder in the LFW-10 layout: num_images 250x250 JPEGs and one attribute's .mat files."""
    import numpy as np
    import scipy.io
    from PIL import Image
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (250, 250, 3), np.uint8)
    for n in range(1, num_images + 1):
        pixels = np.roll(base, n, axis=1)
        Image.fromarray(pixels).save(os.path.join(root, "images", f"{n}.jpg"), quality=90)
    for split in ("train", "test"):
        compare = np.empty((pairs_per_split, 3), dtype=object)
        for r in range(pairs_per_split):
            a, b = rng.choice(num_images, 2, replace=False) + 1
            compare[r] = [f"p{r}", f"{a}.jpg", f"{b}.jpg"]
        votes = np.column_stack([np.zeros(pairs_per_split), rng.multinomial(
            5, [0.45, 0.45, 0.1], size=pairs_per_split)]).astype(np.uint8)
        scipy.io.savemat(os.path.join(root, "annotations", f"smile{split}.mat"),
                         {"images_compare": compare, "attribute_strengths": votes})


def time_beam_conversion(num_images):
    from beam_jobs import convert_lfw10, transforms
    with tempfile.TemporaryDirectory() as tmp:
        write_lfw10_folder(os.path.join(tmp, "LFW10"), num_images)
        started = time.perf_counter()
        result = convert_lfw10.run([f"--input_dir={tmp}/LFW10", f"--output_dir={tmp}/out",
                                    "--attributes=smile"])
        seconds = time.perf_counter() - started
    read = transforms.counters_of(result).get("images_read", 0)
    return round(read / seconds, 1), read, round(seconds, 1)


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    import warnings
    import tensorflow as tf
    from relattr_tf.training import distribute
    distribute.configure_cpu_devices(FLAGS.cpu_devices)  # before TensorFlow is used
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    widths = [0.25] if FLAGS.quick else [float(w) for w in FLAGS.widths]
    sizes = [64] if FLAGS.quick else [int(s) for s in FLAGS.sizes]
    steps = 4 if FLAGS.quick else FLAGS.steps
    env = environment()
    if "env" in FLAGS.only:
        emit(**env)
    matmul_peak = datasheet_peak = None
    if "peak" in FLAGS.only:
        matmul_peak = measure_matmul_peak(FLAGS.mixed_precision)
        datasheet_peak = datasheet_peak_flops(env["device"], FLAGS.mixed_precision)
        emit(measurement="peak", device=env["device"], mixed_precision=FLAGS.mixed_precision,
             matmul_gflops_per_s=round(matmul_peak / 1e9, 1),
             datasheet_gflops_per_s=datasheet_peak and round(datasheet_peak / 1e9))
    if "models" in FLAGS.only:
        for model in FLAGS.models:
            for width in widths:
                for size in sizes:
                    (train, train_median), (infer, infer_median), params, flops = time_model(
                        model, size, width, steps, FLAGS.batch_size, FLAGS.mixed_precision,
                        FLAGS.jit_compile, FLAGS.steps_per_execution)
                    emit(measurement="model", model=model, size=size, width=width,
                         batch=FLAGS.batch_size, train_pairs_per_s=train,
                         train_pairs_per_s_median=train_median, infer_pairs_per_s=infer,
                         infer_pairs_per_s_median=infer_median, params=params,
                         forward_gflops_per_pair=round(flops / 1e9, 4),
                         train_gflops_per_s=round(train * 3 * flops / 1e9, 1),
                         infer_gflops_per_s=round(infer * flops / 1e9, 1),
                         train_of_matmul_peak=utilisation(train, 3 * flops, matmul_peak),
                         infer_of_matmul_peak=utilisation(infer, flops, matmul_peak),
                         train_mfu=utilisation(train, 3 * flops, datasheet_peak),
                         infer_mfu=utilisation(infer, flops, datasheet_peak),
                         mixed_precision=FLAGS.mixed_precision, jit_compile=FLAGS.jit_compile,
                         steps_per_execution=FLAGS.steps_per_execution, steps=steps)
        emit(measurement="peak_memory_after_models", peak_rss_mb=peak_memory_mb())
    devices = distribute.replica_devices() if "replicas" in FLAGS.only else []
    if len(devices) >= 2:
        model, size, width = FLAGS.models[0], max(sizes), widths[0]
        one, two = time_replica_speedup(model, size, width, steps, FLAGS.batch_size,
                                        FLAGS.mixed_precision, FLAGS.jit_compile, devices)
        emit(measurement="replica_speedup", model=model, size=size, width=width,
             batch_per_replica=FLAGS.batch_size, devices=devices[:2],
             train_pairs_per_s_1_replica=one, train_pairs_per_s_2_replicas=two,
             speedup=round(two / one, 2),
             note=("logical CPU devices share the same cores: exercises the code, says nothing "
                   "about scaling") if "CPU" in devices[0] else "")
    if "attic" in FLAGS.only:
        width, size = widths[-1], sizes[0]
        both, ranker_only = time_attic_step(size, width, steps, FLAGS.batch_size,
                                            FLAGS.generated_batch, FLAGS.generator_dir)
        emit(measurement="attic_step", ranker="deepstn", size=size, width=width,
             real_batch=FLAGS.batch_size, generated_batch=FLAGS.generated_batch,
             seconds_per_two_player_step=round(both, 3),
             seconds_per_ranker_step=round(ranker_only, 3),
             ratio=round(both / ranker_only, 2), steps=steps,
             generator=FLAGS.generator_dir or "untrained, configs/cvae_synth.flags' size")
    if "reader" in FLAGS.only:
        data_dir = FLAGS.data_dir
        with tempfile.TemporaryDirectory() as tmp:
            if not data_dir:
                from beam_jobs import make_synthetic
                data_dir = os.path.join(tmp, "synthetic")
                make_synthetic.run([f"--output_dir={data_dir}", "--attributes=brightness",
                                    "--num_images=1000"])
            emit(measurement="reader", pairs_per_s=time_reader(data_dir, FLAGS.batch_size),
                 batch=FLAGS.batch_size, augment="flip,translate", swap=True, image_size=64)
    if "beam" in FLAGS.only:
        count = 300 if FLAGS.quick else FLAGS.beam_images
        per_second, read, seconds = time_beam_conversion(count)
        emit(measurement="beam_conversion", images_per_s=per_second, images=read,
             seconds=seconds, job="convert_lfw10 (250x250 JPEG, DirectRunner)")
    emit(measurement="peak_memory", peak_rss_mb=peak_memory_mb())


if __name__ == "__main__":
    cli.run(main, "relattr_tf.bench")
