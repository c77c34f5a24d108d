"""Label Studio's pairwise tasks and exports, and the CSV answer sheet for other tools.

Labelling config (LABELING_CONFIG): the two images, a Pairwise control ("left" = image_a shows
more, "right" = image_b), a single choice "equal" / "illegible", and a 1-3 confidence rating.
A JSON export is a list of tasks, each with its `data` as imported (our `pair_id` kept) and
one annotation per annotator; an annotation holds one answer (the pairwise choice, or
"equal" / "illegible") and optionally a rating. Cancelled (skipped) annotations are ignored.

The CSV sheet (tasks.csv as written, one row per answer once filled in) has the columns
pair_id, attribute, image_a, image_b, annotator, answer, confidence: answer is more (image_a
shows more), less, equal or illegible; confidence the 1-3 rating or empty. Rows whose answer
is empty are pairs not yet answered.

Every problem in a file is a one-line `LabelError` naming the file and the task or row.
"""
import csv
import json

from relattr_tf.data.synthetic.crowd import EQUAL, ILLEGIBLE, LESS, MORE

RATING_MAX = 3
ANSWERS = (MORE, LESS, EQUAL, ILLEGIBLE)
CSV_COLUMNS = ("pair_id", "attribute", "image_a", "image_b", "annotator", "answer",
               "confidence")
LABELING_CONFIG = """<View>
  <Header value="Which image shows more $attribute?"/>
  <Image name="image_a" value="$image_a"/>
  <Image name="image_b" value="$image_b"/>
  <Pairwise name="comparison" toName="image_a,image_b"/>
  <Choices name="other" toName="image_a" choice="single">
    <Choice value="equal"/><Choice value="illegible"/>
  </Choices>
  <Rating name="confidence" toName="image_a" maxRating="3"/>
</View>
"""
_SELECTED = {"left": MORE, "right": LESS}
_CHOICES = (EQUAL, ILLEGIBLE)


class LabelError(ValueError):
    """A labelling file that cannot be read, with a one-line message naming the file and task."""


def confidence_of(rating):
    """A 1-3 rating -> confidence in (0, 1]."""
    return rating / RATING_MAX


def rating_of(confidence):
    """Confidence in [0, 1] -> the 1-3 rating an annotator would give."""
    return int(min(RATING_MAX, max(1, 1 + int(confidence * RATING_MAX))))


# --------------------------------------------------------------------------- reading answers
def read_answers(path, known_pair_ids):
    """{pair_id: [(annotator, answer, confidence or None)]} from a Label Studio JSON export or
    a CSV sheet, and counts {cancelled, tasks}. Pairs without answers are absent."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.lower().endswith(".csv"):
        return _read_csv(path, text, set(known_pair_ids))
    return _read_export(path, text, set(known_pair_ids))


def _read_export(path, text, known):
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"{path}: not JSON ({e}); expected a Label Studio JSON export or a "
                         f".csv answer sheet") from None
    if not isinstance(tasks, list):
        raise LabelError(f"{path}: not a Label Studio JSON export (a list of tasks expected)")
    answers, counts = {}, dict(tasks=len(tasks), cancelled=0)
    for index, entry in enumerate(tasks):
        where = f"{path}: task {entry.get('id', index) if isinstance(entry, dict) else index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
            raise LabelError(f"{where}: no 'data' object (not a Label Studio export task)")
        pair_id = entry["data"].get("pair_id")
        if not isinstance(pair_id, str) or pair_id not in known:
            raise LabelError(f"{where}: unknown pair_id {pair_id!r} (not in this labelling "
                             f"package)")
        annotations = entry.get("annotations") or []
        if not isinstance(annotations, list) or not all(isinstance(a, dict)
                                                        for a in annotations):
            raise LabelError(f"{where} (pair {pair_id}): 'annotations' is not a list of "
                             f"annotation objects")
        for annotation in annotations:
            if annotation.get("was_cancelled"):
                counts["cancelled"] += 1
                continue
            results = annotation.get("result") or []
            if not isinstance(results, list) or not all(
                    isinstance(r, dict) and isinstance(r.get("value", {}), dict)
                    for r in results):
                raise LabelError(f"{where} (pair {pair_id}): an annotation's 'result' is not a "
                                 f"list of result objects with a 'value' object")
            answer, confidence = _annotation_answer(results, f"{where} (pair {pair_id})")
            answers.setdefault(pair_id, []).append(
                (str(annotation.get("completed_by", "")), answer, confidence))
    return answers, counts


def _annotation_answer(results, where):
    answer, confidence = None, None
    for result in results:
        kind, value = result.get("type"), result.get("value") or {}
        name = result.get("from_name")
        if kind == "pairwise" and name == "comparison":
            selected = value.get("selected")
            found = _SELECTED.get(selected) if isinstance(selected, str) else None
            if found is None:
                raise LabelError(f"{where}: pairwise answer {value.get('selected')!r} is not "
                                 f"left or right")
        elif kind == "choices" and name == "other":
            choices = value.get("choices") or []
            if not isinstance(choices, list) or len(choices) != 1 or choices[0] not in _CHOICES:
                raise LabelError(f"{where}: choice {choices} is not one of "
                                 f"{', '.join(_CHOICES)}")
            found = choices[0]
        elif kind == "rating" and name == "confidence":
            rating = value.get("rating")
            if not isinstance(rating, int) or not 1 <= rating <= RATING_MAX:
                raise LabelError(f"{where}: rating {rating!r} is outside 1-{RATING_MAX}")
            confidence = confidence_of(rating)
            continue
        else:
            raise LabelError(f"{where}: a {kind!r} result from {name!r} is not in the "
                             f"labelling config (comparison, other, confidence)")
        if answer is not None:
            raise LabelError(f"{where}: one annotation gives two answers ({answer}, {found})")
        answer = found
    if answer is None:
        raise LabelError(f"{where}: an annotation without an answer (neither the comparison "
                         f"nor equal / illegible)")
    return answer, confidence


def _read_csv(path, text, known):
    rows = list(csv.DictReader(text.splitlines()))
    missing = [c for c in ("pair_id", "answer") if rows and c not in rows[0]]
    if not rows or missing:
        raise LabelError(f"{path}: no answer rows (a CSV with at least the columns pair_id "
                         f"and answer is expected)")
    answers = {}
    for line, row in enumerate(rows, start=2):
        answer = (row.get("answer") or "").strip().lower()
        if not answer:
            continue
        where = f"{path}: line {line}"
        if row["pair_id"] not in known:
            raise LabelError(f"{where}: unknown pair_id {row['pair_id']!r} (not in this "
                             f"labelling package)")
        if answer not in ANSWERS:
            raise LabelError(f"{where}: answer {answer!r} is not one of {', '.join(ANSWERS)}")
        confidence = (row.get("confidence") or "").strip()
        if confidence:
            try:
                rating = int(confidence)
            except ValueError:
                rating = 0
            if not 1 <= rating <= RATING_MAX:
                raise LabelError(f"{where}: confidence {confidence!r} is not a rating "
                                 f"1-{RATING_MAX}")
            confidence = confidence_of(rating)
        answers.setdefault(row["pair_id"], []).append(
            (row.get("annotator") or "", answer, confidence or None))
    return answers, dict(tasks=len({r["pair_id"] for r in rows}), cancelled=0)


# --------------------------------------------------------------------------- writing
def task_data(pair_id, attribute, url_a, url_b):
    """One task of the import list."""
    return {"data": {"image_a": url_a, "image_b": url_b, "pair_id": pair_id,
                     "attribute": attribute}}


def export_task(task_id, data, answers):
    """One task as Label Studio exports it, with an annotation per (annotator, answer,
    confidence): what the simulated crowd writes, so the same importer reads it."""
    annotations = []
    for number, (annotator, answer, confidence) in enumerate(answers, start=1):
        if answer in (MORE, LESS):
            result = [{"from_name": "comparison", "to_name": ["image_a", "image_b"],
                       "type": "pairwise",
                       "value": {"selected": "left" if answer == MORE else "right"}}]
        else:
            result = [{"from_name": "other", "to_name": "image_a", "type": "choices",
                       "value": {"choices": [answer]}}]
        if confidence is not None and answer != ILLEGIBLE:
            result.append({"from_name": "confidence", "to_name": "image_a", "type": "rating",
                           "value": {"rating": rating_of(confidence)}})
        annotations.append({"id": task_id * 100 + number, "completed_by": annotator,
                            "result": result, "was_cancelled": False, "task": task_id})
    return {"id": task_id, "annotations": annotations, "data": data}
