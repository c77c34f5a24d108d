"""Where a job's pipeline runs: `job_pipeline(beam_args)` is the `beam.Pipeline` every job
opens. It maps the runners' short names (`--runner=dask`) to their classes, and for the
DaskRunner without --dask_client_address (or --dask_scheduler_file) it starts a local Dask
cluster of --direct_num_workers worker processes (0 or none: one per CPU) and closes it, and
the Dask client, when the job ends.

Beam 2.77's DaskRunner, measured: it computes only the lineage of the pipeline's last transform
(another sink is skipped without a word), it hands every output of a multi-output ParDo to
each consumer, it recomputes a side input's producers for every partition that reads it, and
it drops what a DoFn emits from finish_bundle. The jobs are built for it: they end in one
step (records.WriteMetadata) fed by every sink, use no tagged outputs, no side inputs on the
data's path and no finish_bundle output, and count from PCollections (counters.CountElements),
not from runner metrics, which the DaskRunner does not collect (docs/scale.md).
"""
import contextlib
import importlib.util
import logging
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Short names, lower case; Beam knows DirectRunner and DataflowRunner by name, not DaskRunner.
RUNNER_NAMES = {"dask": DASK_RUNNER, "daskrunner": DASK_RUNNER, "direct": "DirectRunner",
                "dataflow": "DataflowRunner"}
DASK_ADDRESS_FLAGS = ("--dask_client_address", "--dask_scheduler_file")


def _flag_value(args, name):
    """The value of the last `--name=value` or `--name value` in args (None: absent)."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def resolve_runner(beam_args):
    """beam_args with a short --runner name (dask, direct, dataflow) replaced by the runner's
    class, and the runner it names (None: Beam's default)."""
    args, runner = [], None
    skip = False
    for index, arg in enumerate(beam_args):
        if skip:
            skip = False
            continue
        if arg == "--runner" and index + 1 < len(beam_args):
            runner, skip = beam_args[index + 1], True
        elif arg.startswith("--runner="):
            runner = arg[len("--runner="):]
        else:
            args.append(arg)
            continue
        runner = RUNNER_NAMES.get(runner.lower(), runner)
        args.append(f"--runner={runner}")
    return args, runner


def is_dask(runner):
    return runner is not None and runner.split(".")[-1] == "DaskRunner"


def dask_workers(beam_args):
    """The local cluster's worker processes: --direct_num_workers, 0 or absent giving one per
    CPU (the DirectRunner reads 0 so, and takes 1 when the flag is absent)."""
    text = _flag_value(beam_args, "--direct_num_workers")
    try:
        workers = int(text) if text is not None else 0
    except ValueError:
        raise SystemExit(f"--direct_num_workers={text}: must be an integer >= 0") from None
    if workers < 0:
        raise SystemExit(f"--direct_num_workers={text}: must be an integer >= 0")
    return workers or os.cpu_count() or 1


def _require_dask():
    if importlib.util.find_spec("distributed") is None:
        raise SystemExit('--runner=dask needs Dask: pip install -e ".[dask]"')


def _local_cluster(workers):
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    if quiet:  # the cluster's start and shutdown chatter; the worker processes read the env
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    from distributed import LocalCluster
    if quiet:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None)


def _quiet_dask_logs():
    # The DaskRunner warns about its default partition size on every Create.
    logging.getLogger("apache_beam.runners.dask.transform_evaluator").setLevel(logging.ERROR)


@contextlib.contextmanager
def job_pipeline(beam_args):
    """`with job_pipeline(beam_args) as p:` builds the pipeline; leaving the block runs it and
    waits (as `with beam.Pipeline(...)`), then closes what it started for Dask."""
    args, runner = resolve_runner(list(beam_args))
    cluster = None
    if is_dask(runner):
        _require_dask()
        _quiet_dask_logs()
        if not any(_flag_value(args, flag) for flag in DASK_ADDRESS_FLAGS):
            cluster = _local_cluster(dask_workers(args))
            args.append(f"--dask_client_address={cluster.scheduler_address}")
    pipeline = None
    try:
        with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
            yield pipeline
    finally:
        try:
            if is_dask(runner):
                _close_client(pipeline, _flag_value(args, "--dask_client_address"))
        finally:
            if cluster is not None:
                cluster.close()


def _close_client(pipeline, address):
    """Closes the client the DaskRunner opened, also when the job failed before its result
    (then the current client, if it is connected to the job's scheduler)."""
    from distributed import Client
    client = getattr(getattr(pipeline, "result", None), "client", None)
    if client is None:
        try:
            client = Client.current()
        except ValueError:  # no client was opened
            return
        if address is None or client.scheduler.address != address:
            return
    client.close()
