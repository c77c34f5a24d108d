"""The labelling package of one round's generated pairs, and importing its labels.

    <package>/images/<pair_id>_a.png, <pair_id>_b.png   the pairs, lossless
    <package>/tasks.json            Label Studio's import list (images as data URIs, or as
                                    local-file URLs under Label Studio's document root)
    <package>/labeling_config.xml   the project's labelling config
    <package>/tasks.csv             the same pairs as a CSV answer sheet for other tools
    <package>/pairs.json            each pair's slot, y^A and y^B, and the attribute

`import_labels` reads a Label Studio JSON export or the filled-in CSV, votes (the benchmark
crowd's rule), applies the agreement and confidence thresholds, and appends the accepted pairs
to a data directory as an image table and a pair split of the same name; illegible, rejected,
unanswered and cancelled answers are counted in the summary it returns.
"""
import base64
import csv
import io
import json
import os
import shutil

import numpy as np
from PIL import Image

from relattr_tf.data import writer
from relattr_tf.data.synthetic import crowd as crowd_lib
from relattr_tf.labelling import label_studio, simulated_crowd

TASKS_FILE = "tasks.json"
CONFIG_FILE = "labeling_config.xml"
CSV_FILE = "tasks.csv"
PAIRS_FILE = "pairs.json"
IMAGES_DIR = "images"


def png_bytes(image):
    """float [0, 1] or uint8 (S, S, 3) -> PNG bytes."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def _url(path, image_urls, local_files_root):
    if image_urls == "local":
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(local_files_root))
        if relative.startswith(".."):
            raise ValueError(f"--local_files_root={local_files_root}: the package {path} is "
                             f"not under it; Label Studio serves only files below its root")
        return f"/data/local-files/?d={relative}"
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def write_package(directory, images, y, *, attribute, generator_attribute, attribute_names,
                  prefix, slots=None, image_urls="data", local_files_root=""):
    """Writes the package of pairs images = (images_a, images_b), y = (y_a, y_b) into
    `directory` (replaced whole: written beside it, then renamed). Pair ids are
    <prefix>-<index>. Returns the directory."""
    images_a, images_b = images
    staging = directory.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, IMAGES_DIR))
    pairs, tasks = [], []
    slots = range(len(images_a)) if slots is None else slots
    for index, (a, b, slot) in enumerate(zip(images_a, images_b, slots)):
        pair_id = f"{prefix}-{index:06d}"
        files = {}
        for side, image in (("a", a), ("b", b)):
            files[side] = f"{IMAGES_DIR}/{pair_id}_{side}.png"
            with open(os.path.join(staging, files[side]), "wb") as f:
                f.write(png_bytes(image))
        pairs.append(dict(pair_id=pair_id, slot=int(slot), image_a=files["a"],
                          image_b=files["b"], y_a=[float(v) for v in y[0][index]],
                          y_b=[float(v) for v in y[1][index]]))
        # Local URLs point at the final directory, where Label Studio will read them.
        url = lambda side: _url(os.path.join(directory, files[side]) if image_urls == "local"
                                else os.path.join(staging, files[side]), image_urls,
                                local_files_root)
        tasks.append(label_studio.task_data(pair_id, attribute, url("a"), url("b")))
    with open(os.path.join(staging, TASKS_FILE), "w", encoding="utf-8") as f:
        json.dump(tasks, f)
    with open(os.path.join(staging, CONFIG_FILE), "w", encoding="utf-8") as f:
        f.write(label_studio.LABELING_CONFIG)
    with open(os.path.join(staging, CSV_FILE), "w", encoding="utf-8", newline="") as f:
        sheet = csv.writer(f)
        sheet.writerow(label_studio.CSV_COLUMNS)
        for pair in pairs:
            sheet.writerow([pair["pair_id"], attribute, pair["image_a"], pair["image_b"],
                            "", "", ""])
    with open(os.path.join(staging, PAIRS_FILE), "w", encoding="utf-8") as f:
        json.dump(dict(attribute=attribute, generator_attribute=generator_attribute,
                       attributes=list(attribute_names), prefix=prefix, pairs=pairs), f,
                  indent=1)
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(staging, directory)
    return directory


def read(directory):
    """The package's pairs.json as a dict, with `tasks` (tasks.json) and `images()` -> the
    (images_a, images_b) uint8 arrays."""
    path = os.path.join(directory, PAIRS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no labelling package here")
    with open(path, encoding="utf-8") as f:
        package = json.load(f)
    with open(os.path.join(directory, TASKS_FILE), encoding="utf-8") as f:
        package["tasks"] = json.load(f)

    def images():
        load = lambda name: np.asarray(Image.open(os.path.join(directory, name)).convert("RGB"))
        return (np.stack([load(p["image_a"]) for p in package["pairs"]]),
                np.stack([load(p["image_b"]) for p in package["pairs"]]))
    package["images"] = images
    package["directory"] = directory
    return package


def y_targets(package):
    """Each pair's label inferred from y^A vs y^B on the generator attribute."""
    k = package["attributes"].index(package["generator_attribute"])
    return [crowd_lib.true_target(p["y_a"][k], p["y_b"][k]) for p in package["pairs"]]


def _append(package, data_dir, name, labels, command):
    """Appends the pairs with a label (dict(target, agreement, confidence)) to data_dir as
    image table and pair split `name`; returns the pair count."""
    kept = [(p, label) for p, label in zip(package["pairs"], labels) if label is not None]
    if not kept:
        return 0
    images_a, images_b = package["images"]()
    index = {p["pair_id"]: i for i, p in enumerate(package["pairs"])}
    truth = [None] * len(package["pairs"])
    if simulated_crowd.can_label(package["generator_attribute"]):
        truth = simulated_crowd.true_targets(images_a, images_b, package["generator_attribute"])
    images, pairs = [], []
    source = f"attic:{name}"
    for pair, label in kept:
        i = index[pair["pair_id"]]
        ids = {side: f"{pair['pair_id']}-{side}" for side in "ab"}
        for side, image in (("a", images_a[i]), ("b", images_b[i])):
            images.append(dict(image=png_bytes(image), image_id=ids[side], source=source))
        pairs.append(dict(id_a=ids["a"], id_b=ids["b"], attribute=package["attribute"],
                          target=label["target"], source=source, split=name,
                          agreement=label.get("agreement"), confidence=label.get("confidence"),
                          true_target=truth[i]))
    writer.add_to_data_dir(data_dir, images=images, table=name, pairs=pairs, command=command)
    return len(pairs)


def vote(package, answers_file, *, min_agreement=0.0, min_confidence=0.0):
    """(each pair's label, dict(target, agreement, confidence) or None when rejected or
    unanswered; the counts) from the answers of `answers_file` for the package's pairs."""
    answers, counts = label_studio.read_answers(answers_file,
                                                [p["pair_id"] for p in package["pairs"]])
    labels, summary = [], dict(pairs=len(package["pairs"]), answers=sum(map(len,
                                                                           answers.values())),
                               cancelled=counts["cancelled"], unanswered=0, illegible=0,
                               low_agreement=0, low_confidence=0)
    for pair in package["pairs"]:
        given = answers.get(pair["pair_id"])
        if not given:
            summary["unanswered"] += 1
            labels.append(None)
            continue
        label = crowd_lib.majority_vote([a for _, a, _ in given], [c for _, _, c in given])
        if label is None:
            summary["illegible"] += 1
        elif label["agreement"] < min_agreement:
            summary["low_agreement"] += 1
            label = None
        elif min_confidence and (label["confidence"] or 0.0) < min_confidence:
            summary["low_confidence"] += 1
            label = None
        labels.append(label)
    return labels, summary


def import_labels(answers_file, package_dir, data_dir, name, *, min_agreement=0.0,
                  min_confidence=0.0, command=""):
    """Votes the answers of `answers_file` for the package's pairs and appends the accepted
    pairs to data_dir (table and split `name`). Returns the summary (counts, and how often the
    accepted labels agree with the y ordering)."""
    package = read(package_dir)
    labels, summary = vote(package, answers_file, min_agreement=min_agreement,
                           min_confidence=min_confidence)
    summary.update(_agreement_with_y(package, labels))
    summary["accepted"] = _append(package, data_dir, name, labels, command)
    summary["equal"] = sum(1 for label in labels if label and label["target"] == 0.5)
    summary.update(source=os.path.abspath(answers_file), name=name)
    return summary


def auto_labels(package_dir, data_dir, name, command=""):
    """Appends every pair with the label its y implies (no labelling)."""
    package = read(package_dir)
    labels = [None if t is None else dict(target=t) for t in y_targets(package)]
    return dict(pairs=len(labels), accepted=_append(package, data_dir, name, labels, command),
                name=name, source="y")


def _agreement_with_y(package, labels):
    inferred = y_targets(package)
    decided = [(label["target"], t) for label, t in zip(labels, inferred)
               if label and label["target"] != 0.5 and t not in (None, 0.5)]
    return dict(agree_with_y=float(np.mean([a == b for a, b in decided])) if decided
                else float("nan"), decided=len(decided))


def summary_line(summary):
    if summary.get("source") == "y":
        return f"{summary['name']}: {summary['accepted']} of {summary['pairs']} pairs added " \
               f"with labels from y"
    return (f"{summary['name']}: {summary['accepted']} of {summary['pairs']} pairs accepted "
            f"({summary['equal']} equal); rejected: {summary['illegible']} illegible, "
            f"{summary['low_agreement']} low agreement, {summary['low_confidence']} low "
            f"confidence; {summary['unanswered']} unanswered, {summary['cancelled']} cancelled "
            f"answers ignored; {summary['answers']} answers; labels agree with y on "
            f"{100 * summary['agree_with_y']:.1f}% of {summary['decided']}")
