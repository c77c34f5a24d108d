"""The active loop's folders as a run leaves them: one per round, <model_dir>/round-NN/:

    adversarial/        the two-player run (control/, the ranker after the phase,
                        eval_generated.json)
    labelling/          the package for Label Studio or the CSV sheet (labelling.package)
    crowd_export.json   the simulated crowd's answers, in Label Studio's export format
    labels.json         the import's summary (written last: the round's labels are in the data)
    ranker/             the ranker retrained on real + every labelled synthetic split so far

and the names of the splits a run appends to the data directory.
"""
import glob
import hashlib
import json
import os

ROUND_GLOB = "round-[0-9]*"
ADVERSARIAL_DIR = "adversarial"
PACKAGE_DIR = "labelling"
CROWD_EXPORT_FILE = "crowd_export.json"
LABELS_FILE = "labels.json"
RANKER_DIR = "ranker"
PRETRAINED_DIR = "pretrained_ranker"


def round_dir(model_dir, number):
    return os.path.join(model_dir, f"round-{number:02d}")


def round_dirs(model_dir):
    """The loop folder's round folders, in order."""
    return sorted(glob.glob(os.path.join(glob.escape(model_dir), ROUND_GLOB)))


def run_prefix(model_dir):
    """A name for a run's appended splits: its folder's name and a hash of its path, so two
    runs in folders of the same name never write the same split."""
    path = os.path.abspath(os.path.normpath(model_dir))
    return f"{os.path.basename(path)}-{hashlib.sha1(path.encode()).hexdigest()[:6]}"


def synthetic_split(config, model_dir, number, prefix=""):
    """The image table and pair split a round's accepted pairs go into."""
    prefix = prefix or run_prefix(model_dir)
    return f"{prefix}-{config.family.attribute}-r{number:02d}"


def labels_done(directory):
    """A round's (or a package folder's) import summary, or None before its labels are in."""
    path = os.path.join(directory, LABELS_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
