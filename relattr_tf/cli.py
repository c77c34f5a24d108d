"""What every command's main shares: the project's errors as one line, not a traceback.

    if __name__ == "__main__":
        cli.run(main, "relattr_tf.train")

A misspelt or out-of-range flag, or an error of the project (a data directory, a config, a .mat
file, a non-finite loss, a missing file, a TensorFlow op error from bad data) ends the command
with `<command>: <message>` on one line and exit status 1; `--verbosity=1` shows the traceback
of the latter too.
"""
import sys
import traceback

from absl import app, flags


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
