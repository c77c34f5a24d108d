"""The command line of every relattr Beam job: argparse with one-line errors, range-checked
number types (positive_int, fraction, ...), the flags the jobs share (add_common_args,
add_conversion_args), `main`, which turns the project's errors into one line `job: message`
and exit code 1, and `command_line`, the command recorded in metadata.json."""
import argparse
import logging
import math
import sys
import traceback


class JobArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are a SystemExit with a one-line message (naming the flag)."""

    def error(self, message):
        raise SystemExit(f"{message} (see --help)")


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse `type=` that parses `kind` and checks low <= / < value <= / < high."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = f"{'an integer' if kind is int else 'a number'} {' and '.join(parts)}".strip()

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    parse.__name__ = wanted
    return parse


positive_int = _number(int, low=1)
non_negative_int = _number(int, low=0)
fraction = _number(float, low=0, high=1, low_open=True)  # (0, 1]
open_fraction = _number(float, low=0, high=1, low_open=True, high_open=True)  # (0, 1)
unit_interval = _number(float, low=0, high=1)  # [0, 1]


def add_common_args(parser):
    """Flags every job takes: --verbosity (and --help)."""
    parser.add_argument("--verbosity", type=non_negative_int, default=0,
                        help="0: one-line errors and warnings; 1: tracebacks and info logs")
    return parser


def add_conversion_args(parser, input_required=True):
    """Flags every converter takes (any other flag is a Beam pipeline option)."""
    parser.add_argument("--input_dir", required=input_required,
                        help="the data set as its archive unpacks")
    parser.add_argument("--output_dir", required=True, help="data directory to write")
    parser.add_argument("--image_size", type=non_negative_int, default=0,
                        help="resize to a square of this size and re-encode (0: keep the bytes)")
    parser.add_argument("--num_shards", type=non_negative_int, default=0,
                        help="shards per image table and pair split (0: one per ~128 MB)")
    parser.add_argument("--max_rejected_fraction", type=unit_interval, default=0.01,
                        help="fail when more than this fraction of the images is unreadable")
    return add_common_args(parser)


# The project's errors: reported as one line, `job: message`.
EXPECTED_ERRORS = (ValueError, OSError)  # MatError and DataError are ValueErrors


def one_line(text):
    """The first non-blank line of text, stripped (an error is reported as one line)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def main(run, job, argv=None):
    """Runs `run(argv)` as a command: the project's errors (MatError, DataError, ValueError,
    OSError, SystemExit with a message) become one line `job: message` on stderr and exit code
    1; --verbosity=1 also prints the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--verbosity", default="0")
    try:
        verbosity = int(peek.parse_known_args(argv)[0].verbosity)
    except ValueError:
        verbosity = 0  # the job's own parser reports the bad value
    logging.getLogger().setLevel(logging.INFO if verbosity >= 1 else logging.WARNING)
    if verbosity < 1:  # Beam logs a failing element's traceback itself: only with --verbosity
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    try:
        run(argv)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            raise  # --help, or an explicit exit status
        _fail(job, e.code, verbosity)
    except EXPECTED_ERRORS as e:
        message = one_line(e)
        if type(e).__name__ not in ("MatError", "DataError"):  # those name the file already
            message = f"{type(e).__name__}: {message}"
        _fail(job, message, verbosity)


def _fail(job, message, verbosity):
    if verbosity >= 1:
        traceback.print_exc()
    message = one_line(message)
    if not message.startswith(job.split(" ")[0]):
        message = f"{job}: {message}"
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def command_line(module, argv):
    """The command that made an output, recorded in metadata.json."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join([f"python -m {module}"] + args)

