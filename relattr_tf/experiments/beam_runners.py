"""The Beam jobs' wall time on each runner, as a study: one ledger cell per (job, runner,
repeat), timed in one run on one machine, the runners taking turns.

Jobs: `make_synthetic`, the default benchmark (`python -m beam_jobs.make_synthetic` with its
defaults), and `convert_lfw10`, an LFW-10 folder of 250 px JPEGs (experiments.bench_timers).
Runners: `direct` (Beam's default, one process), `direct_multiprocessing` (DirectRunner,
--direct_running_mode=multi_processing) and `dask` (--runner=dask: the job starts a local
cluster and closes it, as a user's command does), both with `workers` worker processes.
Each cell records the seconds, the job's counts and the hash of the shards it wrote, so the
table shows that every runner wrote the same files.
"""
import os
import subprocess
import sys
import tempfile
import time

from beam_jobs import transforms
from relattr_tf.data import pipeline
from relattr_tf.evaluation.ledger import record_of
from relattr_tf.experiments import bench_timers

JOBS = ("make_synthetic", "convert_lfw10")
RUNNERS = ("direct", "direct_multiprocessing", "dask")


def runner_args(runner, workers):
    if runner == "direct":
        return []
    if runner == "direct_multiprocessing":
        return ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={workers}"]
    if runner == "dask":
        return ["--runner=dask", f"--direct_num_workers={workers}"]
    raise ValueError(f"--runners: unknown runner {runner!r}; known: {', '.join(RUNNERS)}")


def _run_job(job, runner, workers, tmp, lfw10_images):
    """The job's command in a process of its own, as a user runs it: (seconds, its counts,
    the hash of its shards)."""
    out = os.path.join(tmp, f"{job}-{runner}")
    args = [f"--output_dir={out}"] + runner_args(runner, workers)
    if job == "convert_lfw10":
        folder = os.path.join(tmp, "LFW10")
        if not os.path.isdir(folder):
            bench_timers.write_lfw10_folder(folder, lfw10_images)
        args += [f"--input_dir={folder}", "--attributes=smile"]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"beam_jobs.{job}", *args],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"beam_jobs.{job} on {runner} failed: {lines[-1]}")
    return seconds, transforms.job_counts(out), pipeline.data_hash(out)


def time_runners(ledger, command, jobs=JOBS, runners=RUNNERS, workers=2, repeats=1,
                 lfw10_images=2000):
    """Times every (job, runner, repeat) cell the ledger lacks; returns every record."""
    for runner in runners:
        runner_args(runner, workers)  # an unknown runner fails before anything runs
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        raise ValueError(f"--jobs: unknown job(s) {', '.join(unknown)}; known: "
                         f"{', '.join(JOBS)}")
    settings = dict(workers=workers, lfw10_images=lfw10_images)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for job in jobs:
                for runner in runners:
                    cell = dict(job=job, runner=runner, repeat=repeat)
                    record = ledger.finished(cell, settings=settings)
                    if record is None:
                        print(f"timing {job} on {runner} (repeat {repeat})", flush=True)
                        seconds, counts, shards = _run_job(job, runner, workers, tmp,
                                                           lfw10_images)
                        record = ledger.write(cell, record_of(
                            "runners", ledger.study, cell, command, {}, dict(
                                counts=counts, shards_sha256=shards), seconds,
                            settings=settings))
                        print(f"{job} on {runner}: {seconds:.1f} s", flush=True)
                    records.append(record)
    return records
