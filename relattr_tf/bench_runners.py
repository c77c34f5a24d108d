"""Wall time of the Beam jobs on each runner, side by side in one run, into a result ledger.

    python -m relattr_tf.bench_runners                       # results/beam_runners/
    python -m relattr_tf.bench_runners --jobs=convert_lfw10 --runners=direct,dask --repeats=3

Times the default benchmark (`python -m beam_jobs.make_synthetic` with its defaults) and an
LFW-10 conversion of --lfw10_images JPEGs on the DirectRunner (one process, and
multi-processing) and on Beam's DaskRunner with a local cluster, each job's command in its own
process as a user runs it (experiments/beam_runners.py). `python -m relattr_tf.report
--study=beam_runners` makes the docs' table. Time it on an otherwise idle machine.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_ledger_flags()
flags.DEFINE_list("jobs", ["make_synthetic", "convert_lfw10"], "Beam jobs to time.")
flags.DEFINE_list("runners", ["direct", "direct_multiprocessing", "dask"], "Runners to time.")
flags.DEFINE_integer("workers", 2, "Worker processes of the multi-processing runners.",
                     lower_bound=1)
flags.DEFINE_integer("repeats", 1, "Times each (job, runner) is timed, taking turns.",
                     lower_bound=1)
flags.DEFINE_integer("lfw10_images", 2000, "JPEGs in the LFW-10 folder.", lower_bound=2)
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    from relattr_tf.evaluation import ledger
    from relattr_tf.experiments import beam_runners
    study = ledger.Ledger(FLAGS.results_dir, FLAGS.study or "beam_runners")
    beam_runners.time_runners(study, " ".join(["python -m relattr_tf.bench_runners"]
                                              + sys.argv[1:]),
                              jobs=FLAGS.jobs, runners=FLAGS.runners, workers=FLAGS.workers,
                              repeats=FLAGS.repeats, lfw10_images=FLAGS.lfw10_images)
    print(f"ledger: {study.directory}", flush=True)


if __name__ == "__main__":
    cli.run(main, "relattr_tf.bench_runners")
