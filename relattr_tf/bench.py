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
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags, logging  # noqa: E402

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
cli.define_cpu_devices_flag("Split the CPU into N logical devices (exercises the 2-replica "
                            "measurement without GPUs; its speed-up then means nothing).")
flags.register_validator("sizes", lambda v: all(s.isdigit() and int(s) >= 32 for s in v),
                         "--sizes: image sizes of at least 32")
flags.register_validator("widths", lambda v: all(_positive(w) for w in v),
                         "--widths: positive numbers")
FLAGS = flags.FLAGS


def _positive(text):
    try:
        return float(text) > 0
    except ValueError:
        return False


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    cli.configure_devices(FLAGS.cpu_devices)
    from relattr_tf.experiments import bench
    names = [f.name for f in dataclasses.fields(bench.BenchOptions)]
    values = {name: FLAGS[name].value for name in names}
    values.update(models=tuple(FLAGS.models), only=tuple(FLAGS.only),
                  sizes=tuple(int(s) for s in FLAGS.sizes),
                  widths=tuple(float(w) for w in FLAGS.widths))
    bench.run_bench(bench.BenchOptions(**values))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.bench")
