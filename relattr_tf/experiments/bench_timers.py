"""The benchmark's timers: training and inference pairs/s of the pair models, ATTIC's
two-player step, FLOPs and the matmul peak, the tf.data reader and the Beam conversion."""
import os
import re
import tempfile
import time

import keras
import numpy as np
import scipy.io
import tensorflow as tf
from PIL import Image
from tensorflow.python.framework import convert_to_constants

from beam_jobs import convert_lfw10
from relattr_tf.artifacts import generator as generator_artifact
from relattr_tf.config import AtticConfig, Config, DataConfig, RankerConfig, TrainConfig
from relattr_tf.data import pipeline
from relattr_tf.models import cvae
from relattr_tf.training import attic, ranker as ranker_lib, run


def _step_timer():
    """Keras callback recording the wall time at the end of every training batch."""
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
    data = tf.data.Dataset.from_tensors(_random_batch(batch_size, size)).repeat()
    calls = max(steps // steps_per_execution, 1)
    timer = _step_timer()  # its logs are converted to numbers, so a GPU step has finished
    ranker.fit(data, steps_per_epoch=(warmup + calls) * steps_per_execution, epochs=1,
               verbose=0, callbacks=[timer])
    ends = timer.ends[warmup - 1:]
    return _rates([b - a for a, b in zip(ends, ends[1:])], batch_size * steps_per_execution)


def time_inference(network, batch_size, size, calls, jit_compile, warmup=2):
    """(mean, median) inference pairs/s of the network's forward pass."""
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
    with tempfile.TemporaryDirectory() as tmp:
        if not generator_dir:
            names = ["brightness", "warmth", "contrast", "size", "elongation", "pointy",
                     "stripes", "tilt"]
            decoder = cvae.build_decoder(64, len(names), 64, width=0.25, seed=0)
            generator_dir = os.path.join(tmp, "generator")
            generator_artifact.save_generator(decoder, generator_dir, dict(
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
    rates = []
    for count in (1, 2):
        strategy = tf.distribute.MirroredStrategy(devices[:count])
        ranker = build_ranker(model, size, width, policy, jit_compile, strategy=strategy)
        rates.append(time_training(ranker, batch_size * count, size, steps)[0])
    return rates


def time_reader(data_dir, batch_size, seconds=5.0):
    """Training pairs/s of the reader (decode or gather, flip + translate, swap, batch)."""
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
    with tempfile.TemporaryDirectory() as tmp:
        write_lfw10_folder(os.path.join(tmp, "LFW10"), num_images)
        started = time.perf_counter()
        counts = convert_lfw10.run([f"--input_dir={tmp}/LFW10", f"--output_dir={tmp}/out",
                                    "--attributes=smile"])
        seconds = time.perf_counter() - started
    read = counts.get("images_read", 0)
    return round(read / seconds, 1), read, round(seconds, 1)
