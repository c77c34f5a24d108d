"""ATTIC part 1: the control net, the two-player model, 1 vs 2 replicas, the Label Studio round
trip (the real export's format, every one-line error), the simulated crowd as annotators, and
the adversarial phase with the round trip through `python -m relattr_tf.attic`."""
import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from relattr_tf.data import pipeline, schema
from relattr_tf.data.synthetic import crowd as crowd_lib, render
from relattr_tf.labelling import label_studio, package, simulated_crowd
from relattr_tf.models import control as control_lib
from relattr_tf.training import attic, run
from tests import attic_fixtures
from tests.cli import ROOT, run_module
from tests.test_core import event_values
from tests.test_training import _replica_check

SAMPLE_EXPORT = os.path.join(ROOT, "tests", "fixtures", "label_studio_pairwise_export.json")


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    return attic_fixtures.make_generator(tmp_path_factory.mktemp("generator"))


@pytest.fixture()
def built(generator_dir):
    """A compiled AdversarialRanker (tiny) and its task."""
    config = attic_fixtures.attic_config(generator_dir)
    keras.utils.set_random_seed(0)
    task = attic.AtticTask(config)
    model = task.build()
    run.compile_model(model, task, config, steps_per_epoch=10)
    return model, task


def _snapshot(variables):
    return [np.array(v) for v in variables]


def _moved(before, variables):
    return max(float(np.abs(b - np.asarray(v)).max()) for b, v in zip(before, variables))


def _real_batch(rng, count=4, size=32):
    images = lambda: tf.constant(rng.uniform(size=(count, size, size, 3)), tf.float32)
    return (images(), images()), tf.constant(rng.integers(0, 2, count), tf.float32)


def test_the_control_puts_y_where_the_generator_has_seen_data():
    mean, std = np.array([0.5, -3.0, 40.0]), np.array([0.1, 2.0, 15.0])
    control = control_lib.build_control(8, 3, units=32, head_units=16, seed=0, mean=mean,
                                        std=std)
    q = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    for y in control(q, training=True):  # BatchNorm on the batch: y ~ mean +- std
        np.testing.assert_allclose(np.mean(y, axis=0), mean, atol=1e-3 * std.max())
        np.testing.assert_allclose(np.std(y, axis=0), std, rtol=1e-2)
    z_a, z_b = control_lib.split_latents(q)
    np.testing.assert_array_equal(np.concatenate([z_a, z_b], axis=1), q)
    assert control.get_layer("control_a_bn").synchronized


def test_each_player_moves_only_its_own_weights_and_the_decoder_never(built):
    _players_move_their_own_weights(built[0])


def test_the_layered_generators_artifact_plays_as_the_plain_one(tmp_path):
    generator = attic_fixtures.make_layered_generator(tmp_path / "layered")
    config = attic_fixtures.attic_config(generator)
    keras.utils.set_random_seed(0)
    task = attic.AtticTask(config)
    model = task.build()
    run.compile_model(model, task, config, steps_per_epoch=10)
    assert model.decoder.get_layer("background_decoder") is not None
    _players_move_their_own_weights(model)


def _players_move_their_own_weights(model):
    rng = np.random.default_rng(0)
    ranker_vars = model.network.trainable_variables
    control_vars, decoder_vars = model.control.trainable_variables, model.decoder.weights
    assert not model.decoder.trainable_variables
    ranker0, control0, decoder0 = (_snapshot(ranker_vars), _snapshot(control_vars),
                                   _snapshot(decoder_vars))
    gen_a, gen_b, target, _ = model.control_step(model.slots[:4])
    assert _moved(control0, control_vars) > 0
    assert _moved(ranker0, ranker_vars) == 0 and _moved(decoder0, decoder_vars) == 0
    control1 = _snapshot(control_vars)
    images, real_target = _real_batch(rng)
    model.ranker_step(images, real_target, (gen_a, gen_b, target))
    assert _moved(ranker0, ranker_vars) > 0
    assert _moved(control1, control_vars) == 0 and _moved(decoder0, decoder_vars) == 0
    # The whole step through fit, BatchNorm statistics of the decoder included.
    model.fit(tf.data.Dataset.from_tensors(_real_batch(rng)).repeat(), steps_per_epoch=2,
              epochs=1, verbose=0)
    assert _moved(decoder0, decoder_vars) == 0


def test_control_steps_raise_the_rankers_loss_on_generated_pairs(generator_dir):
    """Against a fixed judge (p from the two images' mean brightness), a few control steps make
    pairs it orders against their labels more often."""
    from relattr_tf.artifacts import generator as cvae
    image_a, image_b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    judge = keras.layers.Lambda(lambda ab: keras.ops.sigmoid(200.0 * (
        keras.ops.mean(ab[0], axis=(1, 2, 3)) - keras.ops.mean(ab[1], axis=(1, 2, 3))))[:, None])
    network = keras.Model([image_a, image_b], judge([image_a, image_b]))
    decoder, info = cvae.load_generator(generator_dir)
    control = control_lib.build_control(8, 2, units=16, head_units=8, seed=0,
                                        mean=info["strength_mean"], std=info["strength_std"])
    slots = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
    model = attic.AdversarialRanker(network, control, decoder, slots, 0, generated_batch=16,
                                    image_size=32)
    model.compile(ranker_optimizer=keras.optimizers.SGD(0.0),
                  control_optimizer=keras.optimizers.SGD(0.05),
                  group_variables={"ranker": [], "control": control.trainable_variables})

    def ranker_loss():
        images, target, _ = model.generate(model.slots, training=True)
        p = model.network(images, training=False)
        return float(keras.losses.binary_crossentropy(target, p).numpy().mean())

    before = ranker_loss()
    for _ in range(10):
        model.control_step(model.slots)
    assert ranker_loss() > before + 0.05


def test_the_slots_are_walked_in_order_and_kept_in_checkpoints(built, tmp_path):
    model, _ = built
    np.testing.assert_array_equal(model.slot_ids(0), [0, 1, 2, 3])
    np.testing.assert_array_equal(model.slot_ids(5), [4, 5, 6, 7])  # 20..23 mod 16
    path = str(tmp_path / "ckpt")
    tf.train.Checkpoint(model=model).write(path)
    slots = np.array(model.slots)
    model.slots.assign(np.zeros_like(slots))
    tf.train.Checkpoint(model=model).read(path).expect_partial()
    np.testing.assert_array_equal(model.slots, slots)


def test_one_and_two_replicas_take_the_same_two_player_step():
    result = _replica_check("--model=attic")
    assert result["replicas"] == 2 and result["step_one"] > 1e-4
    assert result["max_weight_diff"] < 1e-6 * max(1.0, result["step_one"] * 1e3)
    assert result["loss_one"] == pytest.approx(result["loss_two"], rel=1e-5)


# --------------------------------------------------------------------------- Label Studio
def test_the_real_label_studio_export_reads_as_its_answers():
    answers, counts = label_studio.read_answers(SAMPLE_EXPORT, ["r01-000001", "r01-000002"])
    assert answers == {"r01-000001": [("1", "more", 1.0)],
                       "r01-000002": [("1", "illegible", None)]}
    assert counts == dict(tasks=2, cancelled=0)


def _export(tmp_path, tasks):
    path = str(tmp_path / "export.json")
    with open(path, "w") as f:
        json.dump(tasks, f)
    return path


def _task(pair_id, *annotations, task_id=7):
    return {"id": task_id, "data": {"pair_id": pair_id},
            "annotations": [{"completed_by": i, "was_cancelled": False, "result": list(r)}
                            for i, r in enumerate(annotations)]}


PAIRWISE = lambda side: {"from_name": "comparison", "type": "pairwise",
                         "to_name": ["image_a", "image_b"], "value": {"selected": side}}
CHOICE = lambda c: {"from_name": "other", "type": "choices", "to_name": "image_a",
                    "value": {"choices": [c]}}
RATING = lambda r: {"from_name": "confidence", "type": "rating", "to_name": "image_a",
                    "value": {"rating": r}}


@pytest.mark.parametrize("tasks, message", [
    ([_task("nope", [PAIRWISE("left")])], "task 7: unknown pair_id 'nope'"),
    ([_task("p1", [PAIRWISE("middle")])], "task 7 (pair p1): pairwise answer 'middle'"),
    ([_task("p1", [CHOICE("bigger")])], "choice ['bigger'] is not one of equal, illegible"),
    ([_task("p1", [PAIRWISE("left"), RATING(5)])], "rating 5 is outside 1-3"),
    ([_task("p1", [{"from_name": "mood", "type": "textarea", "value": {}}])],
     "'textarea' result from 'mood' is not in the labelling config"),
    ([_task("p1", [PAIRWISE("left"), CHOICE("equal")])], "two answers (more, equal)"),
    ([_task("p1", [RATING(2)])], "an annotation without an answer"),
    ({"not": "a list"}, "not a Label Studio JSON export"),
    ([{"id": 7, "data": {"pair_id": ["p1"]}}], "task 7: unknown pair_id ['p1']"),
    ([{"id": 7, "data": {"pair_id": "p1"}, "annotations": [1]}],
     "'annotations' is not a list of annotation objects"),
    ([_task("p1", ["left"])], "'result' is not a list of result objects"),
    ([_task("p1", [{"from_name": "comparison", "type": "pairwise", "value": {
        "selected": ["left"]}}])], "pairwise answer ['left'] is not left or right"),
])
def test_a_bad_export_is_one_line_naming_the_file_and_task(tmp_path, tasks, message):
    path = _export(tmp_path, tasks)
    with pytest.raises(label_studio.LabelError) as error:
        label_studio.read_answers(path, ["p1"])
    assert path in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_cancelled_annotations_are_ignored_and_counted(tmp_path):
    task = _task("p1", [PAIRWISE("right"), RATING(2)], [PAIRWISE("left")])
    task["annotations"][1]["was_cancelled"] = True
    answers, counts = label_studio.read_answers(_export(tmp_path, [task]), ["p1"])
    assert answers == {"p1": [("0", "less", pytest.approx(2 / 3))]}
    assert counts["cancelled"] == 1


def test_majority_vote_uses_the_benchmark_crowds_tie_rule():
    vote = crowd_lib.majority_vote
    assert vote(["more"] * 3 + ["less"] * 2, [1.0] * 5)["target"] == 1.0
    tie = vote(["more", "more", "less", "less", "equal"], [0.5] * 5)
    assert tie["target"] == 0.5 and tie["agreement"] == 0.2
    assert vote(["illegible"] * 3 + ["more"] * 2, [0, 0, 0, 1, 1]) is None
    assert vote(["more", "illegible"], [None, None]) == dict(target=1.0, agreement=0.5,
                                                             confidence=None)


# --------------------------------------------------------------------------- package, crowd
def _rendered_pairs(count, size=32, seed=0):
    """Benchmark renders, the same scene twice with clearly different brightness."""
    rng = np.random.default_rng(seed)
    images_a, images_b = [], []
    for _ in range(count):
        scene_seed = int(rng.integers(1 << 30))
        levels = rng.permutation(sorted(rng.uniform(0.1, 0.9, 2)))
        pair = []
        for level in levels:
            strengths = np.full(len(render.ATTRIBUTE_NAMES), 0.5)
            strengths[render.ATTRIBUTE_NAMES.index("brightness")] = level
            pair.append(render.render(strengths, np.random.default_rng(scene_seed), size))
        images_a.append(pair[0])
        images_b.append(pair[1])
    return np.stack(images_a), np.stack(images_b)


@pytest.fixture()
def data_copy(tiny_data_dir, tmp_path):
    """A copy of the tiny benchmark (the import grows it)."""
    return shutil.copytree(tiny_data_dir, tmp_path / "data")


def _package(tmp_path, count=12):
    images_a, images_b = _rendered_pairs(count)
    y_a = np.random.default_rng(1).normal(size=(count, 2))
    y_b = y_a.copy()
    y_b[:, 0] += np.where(np.arange(count) % 2, 1.0, -1.0)
    return package.write_package(str(tmp_path / "labelling"), (images_a, images_b), (y_a, y_b),
                                 attribute="brightness", generator_attribute="brightness",
                                 attribute_names=["brightness", "tilt"], prefix="r01")


def test_the_package_holds_label_studio_tasks_config_and_csv(tmp_path):
    directory = _package(tmp_path, count=3)
    tasks = json.load(open(os.path.join(directory, "tasks.json")))
    assert [t["data"]["pair_id"] for t in tasks] == ["r01-000000", "r01-000001", "r01-000002"]
    assert tasks[0]["data"]["image_a"].startswith("data:image/png;base64,")
    assert tasks[0]["data"]["attribute"] == "brightness"
    config = open(os.path.join(directory, "labeling_config.xml")).read()
    assert '<Pairwise name="comparison" toName="image_a,image_b"/>' in config
    rows = list(csv.DictReader(open(os.path.join(directory, "tasks.csv"))))
    assert len(rows) == 3 and rows[0]["image_a"] == "images/r01-000000_a.png"
    pairs = json.load(open(os.path.join(directory, "pairs.json")))["pairs"]
    assert len(pairs[0]["y_a"]) == 2 and not os.path.exists(directory + ".partial")
    local = package.write_package(
        str(tmp_path / "root" / "round"), _rendered_pairs(1), (np.zeros((1, 2)),) * 2,
        attribute="brightness", generator_attribute="brightness",
        attribute_names=["brightness", "tilt"], prefix="r01", image_urls="local",
        local_files_root=str(tmp_path / "root"))
    url = json.load(open(os.path.join(local, "tasks.json")))[0]["data"]["image_a"]
    assert url == "/data/local-files/?d=round/images/r01-000000_a.png"


def test_the_crowds_export_imports_into_the_data_directory(tmp_path, data_copy):
    directory = _package(tmp_path)
    export_path = simulated_crowd.write_crowd_export(package.read(directory),
                                                     str(tmp_path / "crowd.json"))
    tasks = json.load(open(export_path))
    assert len(tasks) == 12 and len(tasks[0]["annotations"]) == 5
    assert {r["from_name"] for t in tasks for a in t["annotations"] for r in a["result"]} <= {
        "comparison", "other", "confidence"}
    summary = package.import_labels(export_path, directory, str(data_copy), "attic-r01",
                                    min_agreement=0.6)
    rejected = summary["illegible"] + summary["low_agreement"] + summary["low_confidence"]
    assert summary["accepted"] + rejected + summary["unanswered"] == 12
    assert summary["accepted"] >= 10 and summary["answers"] == 60
    meta = schema.read_metadata(str(data_copy))
    assert meta["images"]["attic-r01"]["count"] == 2 * summary["accepted"]
    assert meta["splits"]["brightness"]["attic-r01"]["pairs"] == summary["accepted"]
    pairs = pipeline.read_pairs(meta, str(data_copy), "brightness", "attic-r01")
    truth = pairs[schema.TRUE_TARGET]
    # The crowd measured the pixels: its labels are the exact truth on clear pairs.
    assert np.mean(pairs[schema.TARGET][truth >= 0] == truth[truth >= 0]) >= 0.9
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=())
    ds = pipeline.make_dataset(str(data_copy), "brightness", ["train", "attic-r01"], config,
                               training=True, seed=0, meta=meta)
    (image_a, _), _ = next(iter(ds))
    assert image_a.shape == (4, 32, 32, 3)


def test_a_filled_csv_sheet_imports_with_thresholds(tmp_path, data_copy):
    directory = _package(tmp_path, count=4)
    rows = list(csv.DictReader(open(os.path.join(directory, "tasks.csv"))))
    sheet = str(tmp_path / "answers.csv")
    with open(sheet, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=label_studio.CSV_COLUMNS)
        out.writeheader()
        answers = {0: ["more", "more", "more"], 1: ["less", "less", "more"],
                   2: ["illegible", "illegible", "more"], 3: []}
        for index, row in enumerate(rows):
            for annotator, answer in enumerate(answers[index]):
                out.writerow(dict(row, annotator=f"w{annotator}", answer=answer,
                                  confidence=str(1 + index % 3)))
            if not answers[index]:
                out.writerow(row)  # not answered yet
    summary = package.import_labels(sheet, directory, str(data_copy), "sheet-r01",
                                    min_agreement=0.7)
    assert (summary["accepted"], summary["low_agreement"], summary["illegible"],
            summary["unanswered"]) == (1, 1, 1, 1)
    bad = str(tmp_path / "bad.csv")
    with open(bad, "w") as f:
        f.write("pair_id,answer\nr01-000000,bigger\n")
    with pytest.raises(label_studio.LabelError, match=r"bad.csv: line 2: answer 'bigger'"):
        package.import_labels(bad, directory, str(data_copy), "sheet-r01")


def test_auto_labels_follow_y(tmp_path, data_copy):
    directory = _package(tmp_path, count=6)
    summary = package.auto_labels(directory, str(data_copy), "auto-r01")
    assert summary["accepted"] == 6
    meta = schema.read_metadata(str(data_copy))
    pairs = pipeline.read_pairs(meta, str(data_copy), "brightness", "auto-r01")
    by_id = dict(zip(pairs[schema.ID_A], pairs[schema.TARGET]))
    for index in range(6):  # y_b = y_a + 1 on odd pairs: b shows more
        assert by_id[f"r01-{index:06d}-a".encode()] == (0.0 if index % 2 else 1.0)


# --------------------------------------------------------------------------- the command
def _attic_args(data_dir, generator_dir, model_dir, *extra):
    return ["--flagfile=configs/attic_smoke.flags", f"--data_dir={data_dir}",
            f"--generator_dir={generator_dir}", f"--model_dir={model_dir}", "--warm_start=",
            "--attribute=brightness", "--val_steps=1", "--eval_split=test", *extra]


@pytest.mark.slow  # the default run has the one-round loop in test_attic_experiment.py
def test_two_rounds_carry_the_control_over_and_rerun_as_a_no_op(data_copy, generator_dir,
                                                                 tmp_path):
    model_dir = str(tmp_path / "attic")
    proc = run_module("relattr_tf.attic", *_attic_args(data_copy, generator_dir, model_dir,
                                                       "--rounds=2"))
    round_one = os.path.join(model_dir, "round-01")
    for name in ("adversarial/control/control.keras", "adversarial/eval_generated.json",
                 "labelling/tasks.json", "crowd_export.json", "labels.json",
                 "ranker/eval_test.json"):
        assert os.path.exists(os.path.join(round_one, name)), name
    assert os.path.exists(os.path.join(model_dir, "round-02", "ranker", "summary.json"))
    assert "pairs accepted" in proc.stdout and "generated brightness pairs (16)" in proc.stdout
    generated = json.load(open(os.path.join(round_one, "adversarial", "eval_generated.json")))
    for phase in ("control_start", "control_end"):
        entry = generated[phase]
        assert 0 <= entry["illegible_rate"] <= 1 and "ranker_start_accuracy_vs_y" in entry
    # Round 2's adversarial phase started from round 1's control and trained on its labels.
    config = json.load(open(os.path.join(model_dir, "round-02", "adversarial", "config.json")))
    assert config["attic"]["control_from"].endswith("round-01/adversarial")
    # The split is named after the run's folder and a hash of its path (rounds.run_prefix).
    assert any(s.startswith("attic-") and s.split(":")[0].endswith("-brightness-r01")
               for s in config["attic"]["train_split"])
    tags = event_values(os.path.join(round_one, "adversarial", "tensorboard"))
    assert any(tag == "epoch_control_loss" for _, tag in tags)
    assert any(tag == "generated_pairs" for _, tag in tags)
    # Run again: every stage is found done, nothing is appended twice.
    history = len(schema.read_metadata(str(data_copy))["history"])
    again = run_module("relattr_tf.attic", *_attic_args(data_copy, generator_dir, model_dir,
                                                        "--rounds=2"))
    assert "epoch 1/" not in again.stdout
    assert len(schema.read_metadata(str(data_copy))["history"]) == history
