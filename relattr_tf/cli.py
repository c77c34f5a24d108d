"""What every command's main shares: the flags, defined once here, and the project's errors as
one line, not a traceback.

    cli.define_training_flags()          # the config's flags, --model_dir, --cpu_devices
    cli.define_experiment_flags(attributes=..., seeds=..., rounds=...)
    config = cli.prepare()               # in main: quiet logs, devices, determinism, Config
    if __name__ == "__main__":
        cli.run(main, "relattr_tf.train")

A misspelt or out-of-range flag, or an error of the project (a data directory, a config, a .mat
file, a non-finite loss, a missing file, a TensorFlow op error from bad data) ends the command
with `<command>: <message>` on one line and exit status 1; `--verbosity=1` shows the traceback
of the latter too.
"""
import os
import shlex
import sys
import traceback
import warnings

from absl import app, flags, logging

from relattr_tf import config_flags
from relattr_tf.config import FAMILIES, ConfigError, family_of

FLAGS = flags.FLAGS


def define_training_flags(model=None):
    """Every config setting as a flag (relattr_tf.config_flags), --model_dir and --cpu_devices;
    `model` sets --model's default (a command that trains one family)."""
    config_flags.define_flags()
    flags.DEFINE_string("model_dir", "runs/default", "Where checkpoints, logs and the export "
                        "go.")
    define_cpu_devices_flag()
    if model:
        FLAGS.set_default("model", model)


def define_experiment_flags(attributes=("brightness",), seeds=("0",), rounds=None):
    """The experiment commands' own flags: --attributes, --seeds, the result ledger
    (--results_dir, --study) and, with `rounds`, ATTIC's --rounds."""
    flags.DEFINE_list("attributes", list(attributes), "Attributes, one column each.")
    flags.DEFINE_list("seeds", list(seeds), "Seeds: every run is repeated per seed.")
    flags.register_validator("seeds", lambda v: bool(v) and all(s.isdigit() for s in v),
                             "--seeds: non-negative integers")
    define_ledger_flags()
    if rounds is not None:
        define_rounds_flag(rounds, "Active-learning rounds; each labels n / (2 rounds) pairs.")


def define_cpu_devices_flag(help="Split the CPU into N logical devices (tests, CI)."):
    flags.DEFINE_integer("cpu_devices", 1, help, lower_bound=1, upper_bound=64)


def define_rounds_flag(default, help):
    """ATTIC's --rounds (the loop's and the experiment's)."""
    flags.DEFINE_integer("rounds", default, help, lower_bound=1)


def define_ledger_flags():
    """--results_dir and --study: where an experiment command's ledger goes."""
    flags.DEFINE_string("results_dir", "results", "Result ledgers go into <results_dir>/<study>"
                        "/, one JSON per finished cell; a rerun skips the finished cells.")
    flags.DEFINE_string("study", "", "The study's name, its ledger folder ('' = the name of "
                        "--model_dir).")


def check_family(command, family):
    """A one-line error when --model is not of the family the command runs."""
    if family_of(FLAGS.model) != family:
        models = "|".join(FAMILIES[family][1])
        raise ConfigError(f"--model={FLAGS.model} is not a {family} model; {command} runs "
                          f"--model={models} (relattr_tf.train trains the others)")


def prepare():
    """Quiet logs, logical CPU devices and determinism from the flags; returns the Config."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the per-epoch lines readable
    config = config_flags.from_flags()
    if config.train.deterministic:
        # oneDNN's results depend on its thread count, which TensorFlow may change between
        # steps; TensorFlow's own CPU kernels are the reproducible (slower) path. Read at
        # TensorFlow's import, which comes after this (tests/test_faults.py checks).
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    configure_devices(FLAGS.cpu_devices)
    if config.train.deterministic:
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    return config


def configure_devices(cpu_devices):
    """Logical CPU devices before TensorFlow is used, and its log quietened."""
    from relattr_tf.training import distribute  # imports TensorFlow: after the environment
    distribute.configure_cpu_devices(cpu_devices)
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # our datasets shuffle


def ledger():
    """The result ledger of an experiment command's flags."""
    from relattr_tf.evaluation.ledger import Ledger
    return Ledger(FLAGS.results_dir, FLAGS.study or os.path.basename(
        os.path.normpath(FLAGS.model_dir)))


def command_line(command, leave_out=()):
    """The command as it was run, for ledgers and table heads."""
    args = [a for a in sys.argv[1:] if not any(a.startswith(p) for p in leave_out)]
    return f"python -m {command} " + " ".join(shlex.quote(a) for a in args)


def no_arguments(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def _one_line(error):
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(message.strip().splitlines()[:1])


def is_project_error(error):
    """Errors that describe bad input or settings (as opposed to a bug)."""
    if isinstance(error, (ValueError, FileNotFoundError)):
        return True  # DataError, ConfigError and MatError are ValueErrors
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"NonFiniteLossError", "OpError"})


def run(main, command):
    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:  # a misspelt or out-of-range flag: one line naming it
            sys.exit(f"{command}: {_one_line(error)}")

    def guarded(argv):
        try:
            return main(argv)
        except Exception as error:  # noqa: BLE001  reported as one line below
            if not is_project_error(error):
                raise
            if flags.FLAGS["verbosity"].value >= 1:
                traceback.print_exc()
            sys.exit(f"{command}: {_one_line(error)}")
    app.run(guarded, flags_parser=parse)
