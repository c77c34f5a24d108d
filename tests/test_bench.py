"""The benchmark command: one JSON line per measurement, as a user runs it."""
import json

from tests.cli import run_module


def test_bench_reports_models_reader_and_memory(tiny_data_dir):
    proc = run_module("relattr_tf.bench", "--only=env,models,reader", "--models=ranknet,dacrl",
                      "--sizes=32", "--widths=0.125", "--steps=3", "--steps_per_execution=1",
                      f"--data_dir={tiny_data_dir}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_kind = {}
    for record in records:
        by_kind.setdefault(record["measurement"], []).append(record)
    assert by_kind["environment"][0]["onednn_cpu_kernels"] is True  # our default on CPU
    assert [m["model"] for m in by_kind["model"]] == ["ranknet", "dacrl"]
    for m in by_kind["model"]:
        assert m["size"] == 32 and m["width"] == 0.125 and m["params"] > 0
        for key in ("train_pairs_per_s", "train_pairs_per_s_median", "infer_pairs_per_s",
                    "infer_pairs_per_s_median"):
            assert m[key] > 0, (key, m)
    assert by_kind["reader"][0]["pairs_per_s"] > 0
    assert by_kind["peak_memory"][0]["peak_rss_mb"] > 100
