"""The benchmark command: one JSON line per measurement, as a user runs it."""
import json

from relattr_tf.experiments import bench_timers as bench
from relattr_tf.models import build_ranknet
from relattr_tf.models.vgg16 import VGG16_BLOCKS
from tests.cli import run_module


def test_bench_reports_models_peak_replicas_reader_and_memory(tiny_data_dir):
    proc = run_module("relattr_tf.bench", "--only=env,peak,models,replicas,attic,reader",
                      "--models=ranknet,dacrl", "--sizes=32", "--widths=0.125", "--steps=3",
                      "--cpu_devices=2", f"--data_dir={tiny_data_dir}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_kind = {}
    for record in records:
        by_kind.setdefault(record["measurement"], []).append(record)
    assert by_kind["environment"][0]["onednn_cpu_kernels"] is True  # our default on CPU
    peak = by_kind["peak"][0]
    assert peak["matmul_gflops_per_s"] > 1 and peak["datasheet_gflops_per_s"] is None  # a CPU
    assert [m["model"] for m in by_kind["model"]] == ["ranknet", "dacrl"]
    attic = by_kind["attic_step"][0]  # ATTIC's two-player step beside DeepSTN's own
    assert attic["seconds_per_two_player_step"] > 0 and attic["seconds_per_ranker_step"] > 0
    assert attic["size"] == 32 and attic["generated_batch"] == 12
    ranknet, dacrl = by_kind["model"]
    assert dacrl["forward_gflops_per_pair"] > ranknet["forward_gflops_per_pair"] > 0
    for m in by_kind["model"]:
        assert m["size"] == 32 and m["width"] == 0.125 and m["params"] > 0
        for key in ("train_pairs_per_s", "train_pairs_per_s_median", "infer_pairs_per_s",
                    "infer_pairs_per_s_median", "train_gflops_per_s", "train_of_matmul_peak",
                    "infer_of_matmul_peak"):
            assert m[key] > 0, (key, m)
        assert m["train_mfu"] is None  # no datasheet peak for a CPU
    speedup = by_kind["replica_speedup"][0]
    assert speedup["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert speedup["train_pairs_per_s_1_replica"] > 0 and speedup["speedup"] > 0
    assert by_kind["reader"][0]["pairs_per_s"] > 0
    assert by_kind["peak_memory"][0]["peak_rss_mb"] > 100


def test_forward_flops_count_vgg16_convolutions():
    size = 32
    expected, channels, side = 0, 3, size
    for filters, convs in VGG16_BLOCKS:
        for _ in range(convs):
            expected += 2 * side * side * 9 * channels * filters  # multiply-adds count 2
            channels = filters
        side //= 2
    flops = bench.forward_flops_per_pair(build_ranknet(size, width=1.0).network, size)
    # Two images per pair; bias, ReLU, pooling and the score layer add well under 1 %.
    assert 2 * expected <= flops <= 2 * expected * 1.01


def test_datasheet_peak_matches_the_specific_name_first():
    assert bench.datasheet_peak_flops("NVIDIA H100 PCIe", "mixed_bfloat16") == 756e12
    assert bench.datasheet_peak_flops("NVIDIA H100 80GB HBM3", "float32") == 495e12
    assert bench.datasheet_peak_flops("NVIDIA A100-SXM4-40GB", "mixed_float16") == 312e12
    assert bench.datasheet_peak_flops("NVIDIA L40S", "float32") is None  # not an L4
    assert bench.datasheet_peak_flops("CPU", "float32") is None
