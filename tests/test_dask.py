"""The Beam jobs on Beam's DaskRunner, on a real local Dask cluster of 2 worker processes on
127.0.0.1: the same shard files and rejected.csv as the DirectRunner, the same summary line,
and the same one-line failure on too many bad images."""
import glob
import json
import os

import pytest

from beam_jobs import convert_osr_pubfig, make_synthetic, runners
from tests import real_fixtures
from tests.cli import run_module
from tests.conftest import TINY_ARGS


@pytest.fixture(scope="module")
def cluster():
    """An existing cluster, as a user's `dask scheduler` and `dask worker`s would be."""
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as local:
        yield local.scheduler_address


def _shard_files(data_dir):
    paths = glob.glob(os.path.join(data_dir, "**", "*.tfrecord.gz"), recursive=True)
    return {os.path.relpath(p, data_dir): open(p, "rb").read() for p in sorted(paths)}


def _tasks_run(address):
    """How many task transitions the cluster's scheduler has made."""
    from distributed import Client
    with Client(address) as client:
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


def _summary(stdout, job):
    line = next(line for line in stdout.splitlines() if line.startswith(f"{job}: wrote "))
    return line.split("(", 1)[1]  # the counts, without the path and the time


def test_short_runner_names_map_to_their_classes_and_dask_workers_default_to_the_cpus():
    args, runner = runners.resolve_runner(["--runner", "dask", "--seed=1"])
    assert sorted(args) == ["--runner=" + runners.DASK_RUNNER, "--seed=1"]
    assert runner == runners.DASK_RUNNER and runners.is_dask(runner)
    assert runners.resolve_runner(["--runner=DaskRunner"])[1] == runners.DASK_RUNNER
    assert runners.resolve_runner(["--runner=DirectRunner"])[1] == "DirectRunner"
    assert runners.resolve_runner([])[1] is None
    assert runners.dask_workers(["--direct_num_workers=3"]) == 3
    assert runners.dask_workers([]) == runners.dask_workers(["--direct_num_workers=0"]) \
        == os.cpu_count()
    with pytest.raises(SystemExit, match="--direct_num_workers=x: must be an integer"):
        runners.dask_workers(["--direct_num_workers=x"])


@pytest.mark.slow  # the default run has the DaskRunner in the converter test below
def test_make_synthetic_on_a_local_dask_cluster_writes_the_direct_runners_files(tmp_path,
                                                                               capsys):
    """As a user runs it: --runner=dask starts a 2-worker cluster and closes it. Partitions of
    16 elements, so grouping and joining cross partitions and workers."""
    out = str(tmp_path / "dask")
    proc = run_module("beam_jobs.make_synthetic", f"--output_dir={out}", *TINY_ARGS,
                      "--runner=dask", "--direct_num_workers=2", "--dask_partition_size=16")
    make_synthetic.run([f"--output_dir={tmp_path / 'direct'}", *TINY_ARGS])  # in-process
    assert _summary(proc.stdout, "make_synthetic") == _summary(capsys.readouterr().out,
                                                               "make_synthetic")
    assert "Traceback" not in proc.stderr
    files = _shard_files(out)
    assert files == _shard_files(tmp_path / "direct") and len(files) > 10
    dask_meta = json.load(open(os.path.join(out, "metadata.json")))
    direct_meta = json.load(open(tmp_path / "direct" / "metadata.json"))
    for key in ("images", "splits", "job_counts"):
        assert dask_meta[key] == direct_meta[key], key
    assert dask_meta["job_counts"]["images_rendered"] == 90


def test_a_converter_on_an_existing_dask_cluster_rejects_and_fails_as_on_the_direct_runner(
        cluster, tmp_path):
    real_fixtures.make_pubfig(str(tmp_path / "pubfig"), bad_image="Cid_4.jpg")
    args = ["--dataset=pubfig", f"--input_dir={tmp_path / 'pubfig'}"]
    on_dask = ["--runner=dask", f"--dask_client_address={cluster}", "--dask_partition_size=4"]
    outs = {}
    for name, extra in (("dask", on_dask), ("direct", [])):
        outs[name] = str(tmp_path / name)
        before = _tasks_run(cluster)
        counts = convert_osr_pubfig.run(args + [f"--output_dir={outs[name]}",
                                                "--max_rejected_fraction=0.1"] + extra)
        assert counts["images_rejected"] == 1 and counts["pairs_missing_image"] == 10
        assert (_tasks_run(cluster) > before + 20) == (name == "dask")  # where it ran
    assert _shard_files(outs["dask"]) == _shard_files(outs["direct"])
    rejected = [open(os.path.join(outs[n], "rejected.csv")).read() for n in ("dask", "direct")]
    assert rejected[0] == rejected[1] and "Cid_4.jpg" in rejected[0]
    # Too many bad images (the default 1 %): the one-line error the direct runner gives
    # (in-process there, in test_converters), from the command on the cluster.
    proc = run_module("beam_jobs.convert_osr_pubfig", *args, f"--output_dir={tmp_path / 'fails'}",
                      *on_dask, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "convert_osr_pubfig (pubfig): 1 of 12 images could not be read (8.3%, more than "
        "--max_rejected_fraction=0.01); see ")
    assert not os.path.exists(tmp_path / "fails" / "metadata.json")


def _converters(root):
    """(job module, its flags) for every converter, on the fixtures of tests/test_converters."""
    from beam_jobs import convert_lfw10, convert_lfw_attributes, convert_zappos
    real_fixtures.make_pubfig(str(root / "pubfig"))
    real_fixtures.make_lfw10(str(root / "LFW10"))
    real_fixtures.make_zappos(str(root / "zappos"))
    real_fixtures.make_lfw_attributes(str(root / "LFW"))
    loose = "--max_rejected_fraction=0.5"  # the fixtures hold bad rows and missing images
    return {
        "pubfig": (convert_osr_pubfig, ["--dataset=pubfig", f"--input_dir={root / 'pubfig'}"]),
        "lfw10": (convert_lfw10, [f"--input_dir={root / 'LFW10'}", "--attributes=smile,young"]),
        "zap50k1": (convert_zappos, ["--collection=zap50k1", f"--input_dir={root / 'zappos'}",
                                     loose]),
        "zap50k2": (convert_zappos, ["--collection=zap50k2", f"--input_dir={root / 'zappos'}",
                                     "--include_equal", loose]),
        "lfw_attributes": (convert_lfw_attributes, [f"--input_dir={root / 'LFW'}", loose,
                                                    "--image_size=16"]),
    }


@pytest.mark.slow
def test_every_converter_on_dask_writes_the_direct_runners_files(cluster, tmp_path):
    for name, (job, args) in _converters(tmp_path).items():
        outs = [str(tmp_path / f"{name}-{runner}") for runner in ("dask", "direct")]
        on_dask = job.run(args + [f"--output_dir={outs[0]}", "--runner=dask",
                                  f"--dask_client_address={cluster}"])
        assert on_dask == job.run(args + [f"--output_dir={outs[1]}"]), name
        assert _shard_files(outs[0]) == _shard_files(outs[1]), name
        assert [open(os.path.join(o, "rejected.csv")).read() for o in outs] == \
            [open(os.path.join(outs[1], "rejected.csv")).read()] * 2, name
