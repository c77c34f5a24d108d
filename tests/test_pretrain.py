"""Pretraining the trunk on the benchmark's pretrain table: the labelled table, the command, the
Keras-layout weight file the rankers load, the linear probe, and one-line errors."""
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from relattr_tf import config as config_lib
from relattr_tf.artifacts import run_config
from relattr_tf.data import schema
from relattr_tf.data.synthetic import render
from relattr_tf.models import vgg16
from relattr_tf.training import ranker
from tests.cli import run_module
from tests.conftest import make_tiny


def _raw(data_dir, table):
    meta = schema.read_metadata(data_dir)
    files = schema.shard_paths(data_dir, schema.image_table(meta, data_dir, table), table)
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _records(data_dir, table):
    return [schema.decode_record(r) for r in _raw(data_dir, table)]


def _labelled_scenes(count, size, seed):
    """`count` benchmark pictures and their pretrain label vectors (render.LABEL_HEADS)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(count):
        scene = {}
        images.append(render.render(rng.uniform(size=8), rng, size, scene))
        labels.append(render.scene_labels(scene))
    return np.stack(images), np.stack(labels).astype("float32")


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("pretrain_data"), "--pretrain_images=64")


def test_the_pretrain_table_is_labelled_and_leaves_the_other_tables_as_they_were(
        pretrain_data, tiny_data_dir):
    meta = schema.read_metadata(pretrain_data)
    assert meta["images"]["pretrain"]["count"] == 64
    assert "scenery" not in meta["images"]["pretrain"]  # the default's metadata as before
    assert [h["name"] for h in schema.label_heads(meta, pretrain_data, "pretrain")] == \
        [h["name"] for h in render.LABEL_HEADS]
    for table in ("train", "test", "generator"):  # the rankers' images are unchanged
        assert _raw(pretrain_data, table) == _raw(tiny_data_dir, table)
    ids = {r["id"] for r in _records(tiny_data_dir, "train")}
    columns = schema.label_columns(render.LABEL_HEADS)
    for record in _records(pretrain_data, "pretrain"):
        assert record["id"] not in ids
        labels = {name: record["labels"][start:stop] for name, (start, stop) in columns.items()}
        count = labels["distractor_count"][0]
        assert count in (0, 1, 2) and 0 <= labels["subject_cell"][0] < 9
        assert 0 <= labels["texture_orientation"][0] < 6
        assert 1 <= sum(labels["distractor_colours"]) <= count + 1  # colours may repeat
        assert labels["distractor_colours"][int(labels["main_distractor_colour"][0])] == 1
        for name in ("texture_fine", "main_distractor_pointed", "main_distractor_striped",
                     "main_distractor_large"):
            assert labels[name][0] in (0, 1)
        assert labels["light_side"][0] in (0, 1, 2, 3)
    with pytest.raises(schema.DataError, match="has no labels"):
        schema.label_heads(meta, pretrain_data, "train")


def test_scene_labels_follow_the_rendered_scene():
    rng = np.random.default_rng(5)
    scene = {}
    render.render(rng.uniform(size=8), rng, 32, scene)
    labels = render.scene_labels(scene)
    x, y = scene["subject_centre"]
    assert labels[1] == int(y * 3) * 3 + int(x * 3)
    assert labels[0] == len(scene["distractor_colours"]) - 1
    assert set(np.flatnonzero(labels[4:10])) == set(scene["distractor_colours"])
    main = render.main_distractor(scene)
    assert main["visible_px"] == max(d["visible_px"] for d in scene["distractors"])
    assert labels[10] == main["colour"] and labels[3] == (scene["texture_cycles"] >= 5)
    side = round(scene["light_direction"] / (np.pi / 2)) % 4  # 0 right, 1 bottom, 2 left, 3 top
    assert labels[14] == side


def test_no_label_reads_the_subjects_strengths():
    """The same nuisance draws with other subject strengths give the same labels, except the
    subject's grid cell (its size narrows where its centre may be drawn), and the same
    pictures as before the labels were recorded."""
    for seed in range(20):
        labels = []
        for strengths in (np.zeros(8), np.ones(8), np.full(8, 0.5)):
            scene = {}
            image = render.render(strengths, np.random.default_rng(seed), 32, scene)
            np.testing.assert_array_equal(
                image, render.render(strengths, np.random.default_rng(seed), 32))
            labels.append(np.delete(render.scene_labels(scene), 1))
        np.testing.assert_array_equal(labels[0], labels[1])
        np.testing.assert_array_equal(labels[0], labels[2])


def test_the_varied_scenery_labels_read_its_own_draws_and_never_the_subject():
    heads = render.label_heads(render.VARIED_SCENERY)
    columns = schema.label_columns(heads)
    seen, shapes = set(), set()
    for seed in range(30):
        labels = []
        for strengths in (np.zeros(8), np.ones(8)):
            scene = {}
            render.render(strengths, np.random.default_rng(seed), 32, scene,
                          render.VARIED_SCENERY)
            # With the subject's fixed margin its cell is the same whatever its strengths too.
            labels.append(render.scene_labels(scene, heads))
            level = labels[-1][slice(*columns["background_level"])][0]
            assert level == min(int(scene["background_grey"] * 3), 2)
            seen.add(int(level))
            main = render.main_distractor(scene)
            elongated, orientation = (labels[-1][slice(*columns[name])][0] for name in (
                "main_distractor_elongated", "main_distractor_orientation"))
            assert elongated == (main["elongation"] >= render.ELONGATED)
            assert orientation == int(main["orientation"] / np.pi * 4)
            shapes.add((int(elongated), int(orientation)))
        np.testing.assert_array_equal(labels[0], labels[1])
    assert seen == {0, 1, 2} and len(shapes) == 8
    assert render.label_heads() == render.LABEL_HEADS  # the benchmark's table keeps its heads


def test_pretrain_images_drawn_with_varied_scenery_and_middle_global_strengths(tmp_path):
    data_dir = make_tiny(tmp_path / "d", "--pretrain_images=24", "--pretrain_scenery=varied",
                         "--pretrain_global=middle")
    table = schema.image_table(schema.read_metadata(data_dir), data_dir, "pretrain")
    assert table["scenery"] == "varied" and table["global_strengths"] == "middle"
    assert [h["name"] for h in table["label_heads"]][-5:] == [
        "background_level", "background_tint", "texture_strong", "main_distractor_elongated",
        "main_distractor_orientation"]
    records = _records(data_dir, "pretrain")
    assert len(records[0]["labels"]) == sum(schema.label_columns(table["label_heads"])[
        h["name"]][1] - schema.label_columns(table["label_heads"])[h["name"]][0]
        for h in table["label_heads"])
    # Global strengths held at 0.5: under the benchmark's scenery the pictures' measured
    # warmth stays near one value, while drawn it spreads over about +-0.25.
    from beam_jobs import make_synthetic
    spread = {}
    for drawn in ("drawn", "middle"):
        render_image = make_synthetic.RenderImage(0, 32, "benchmark", drawn)
        spread[drawn] = np.std([next(iter(render_image.process((i, "pretrain"))))[
            "strengths"][1] for i in range(40)])
    assert spread["middle"] < 0.25 * spread["drawn"]


def test_the_oracle_ceilings_read_what_the_pictures_show():
    from relattr_tf.evaluation import head_ceilings
    benchmark = head_ceilings.head_ceilings(64, count=400)
    assert set(benchmark) == {"main_distractor_colour", "distractor_colours",
                              "main_distractor_pointed", "main_distractor_striped",
                              "main_distractor_large", "light_side"}
    assert benchmark["main_distractor_colour"] > 0.8 and benchmark["main_distractor_large"] > 0.75
    assert 0.5 < benchmark["light_side"] < 0.97  # a faint gradient under the texture
    varied = head_ceilings.head_ceilings(64, render.VARIED_SCENERY, count=400)
    assert varied["light_side"] > max(0.9, benchmark["light_side"])  # up to 30 %, not 8 %
    # The outline heads (varied only): read from the outline's second moments, well above
    # chance (50 and 25 %) but short of 100 (near-round distractors hide their axis).
    assert 0.7 < varied["main_distractor_elongated"] < 0.98
    assert 0.6 < varied["main_distractor_orientation"] < 0.98


@pytest.mark.parametrize("init", ["he", "glorot"])
def test_every_head_starts_within_twice_its_chance_loss(init):
    """The trunk's input scale: with 0-255 pixels into an unscaled He initialisation the
    softmaxes start saturated (initial losses 4-11x chance at this size)."""
    from relattr_tf.models.scene_classifier import build_scene_classifier
    from relattr_tf.training import pretrain
    images, labels = _labelled_scenes(128, 64, seed=0)
    keras.utils.set_random_seed(0)
    parts = build_scene_classifier(64, 0.25, render.LABEL_HEADS, 256, seed=0, trunk_init=init)
    model = pretrain.SceneClassifier(parts.network, render.LABEL_HEADS)
    features = np.asarray(parts.trunk(images))
    assert 0.1 < features.std() < 10  # near unit scale, whatever the initialisation
    losses = model.losses_by_head(labels, model(images))
    columns = schema.label_columns(render.LABEL_HEADS)
    for head in render.LABEL_HEADS:
        chance = pretrain.chance_loss(head, labels[:, slice(*columns[head["name"]])])
        assert float(losses[head["name"]]) < 2 * chance, head["name"]


@pytest.fixture(scope="module")
def pretrained(pretrain_data, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("pretrained"))
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      f"--data_dir={pretrain_data}", f"--model_dir={model_dir}",
                      "--validation_fraction=0.25", f"--results_dir={model_dir}/results",
                      "--study=smoke", "--width=0.125")
    return model_dir, proc.stdout


def test_the_smoke_config_writes_a_file_keras_vgg16_loads_and_the_gate_verdict(tmp_path):
    """The smoke config as a user runs it (its own data built by --make_data), at width 1."""
    model_dir = tmp_path / "model"
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      f"--data_dir={tmp_path / 'data'}", f"--model_dir={model_dir}",
                      f"--results_dir={tmp_path / 'results'}")
    path = str(model_dir / "vgg16_notop.h5")
    reference = keras.applications.VGG16(weights=path, include_top=False, input_shape=(32, 32, 3))
    assert reference.get_layer("block1_conv1").kernel.shape == (3, 3, 3, 64)
    gate = json.load(open(model_dir / "eval_pretrain.json"))["gate"]
    assert isinstance(gate["passed"], bool) and gate["checks"]
    assert ("gate: PASSED" if gate["passed"] else "gate: FAILED: ") in proc.stdout


def test_pretrain_command_writes_the_weight_file_accuracy_and_probe(pretrained, tiny_data_dir):
    model_dir, stdout = pretrained
    assert "epoch 2/2" in stdout and "linear probe" in stdout
    result = json.load(open(os.path.join(model_dir, "eval_pretrain.json")))
    assert set(result["heldout_accuracy"]) == {h["name"] for h in render.LABEL_HEADS}
    assert all(0 <= a <= 1 for a in result["heldout_accuracy"].values())
    assert set(result["chance_accuracy"]) == set(result["heldout_accuracy"])
    gate = result["gate"]
    assert gate["passed"] == (not gate["failed"]) and len(gate["checks"]) >= 10 + 2 + 1
    assert ("gate: PASSED" if gate["passed"] else "gate: FAILED: ") in stdout
    cell = "seed-0__image_size-32__precision-float32.json"
    record = json.load(open(os.path.join(model_dir, "results", "smoke", cell)))
    assert record["kind"] == "pretrain" and record["metrics"]["gate"] == gate
    assert record["data_sha256"] and record["machine"]["cpu_flags"]
    probe = result["probe"]["attributes"]
    assert set(probe) == set(schema.read_metadata(tiny_data_dir)["strength_names"])
    assert all(-1 <= p["spearman"] <= 1 for p in probe.values() if np.isfinite(p["spearman"]))
    assert vgg16.first_conv_channels(os.path.join(model_dir, "vgg16_notop.h5")) == 8


def test_a_ranker_starts_from_the_pretrained_trunk(pretrained, tiny_data_dir):
    model_dir, _ = pretrained
    weights = os.path.join(model_dir, "vgg16_notop.h5")
    config = config_lib.Config(
        model="ranknet", data=config_lib.DataConfig(data_dir=tiny_data_dir, image_size=32),
        family=config_lib.RankerConfig(width=0.125, backbone_weights=weights))
    task = ranker.RankerTask(config)
    task.check_config(1)
    task.build()
    expected = vgg16.build_vgg16_trunk(32, 0.125)
    vgg16.load_imagenet_weights(expected, weights)
    for a, b in zip(task.parts.trunk.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(config_lib.ConfigError, match="8 first-layer channels; --width=0.25"):
        ranker.RankerTask(config.with_values(width=0.25)).check_config(1)


def test_pretrain_errors_are_one_line(tiny_data_dir, tmp_path):
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      f"--data_dir={tiny_data_dir}", f"--model_dir={tmp_path / 'm'}",
                      check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"relattr_tf.pretrain: {tiny_data_dir}/metadata.json: ")
    assert "image table 'pretrain'" in last
    proc = run_module("relattr_tf.pretrain", "--flagfile=configs/pretrain_smoke.flags",
                      "--model=dacrl", f"--model_dir={tmp_path / 'm'}", check=False)
    assert proc.returncode == 1 and "--model=dacrl is not a pretrain model" in proc.stderr


def test_ablation_from_the_pretrained_trunk_reports_mean_and_std_over_seeds(
        pretrained, pretrain_data, tmp_path):
    """A smoke-size ablation: its ledger, a second run that skips every finished cell, and
    report turning the ledger into the same table."""
    model_dir, _ = pretrained
    out, results = str(tmp_path / "ablation"), str(tmp_path / "results")
    args = ["--flagfile=configs/smoke.flags", f"--data_dir={pretrain_data}",
            f"--model_dir={out}", f"--backbone_weights={model_dir}/vgg16_notop.h5",
            "--models=dacrl", "--pair_sets=fine", "--attributes=brightness",
            "--seeds=0,1", "--eval_split=test_fine", "--tensorboard_images=0",
            f"--results_dir={results}", "--study=smoke_ablation"]
    proc = run_module("relattr_tf.ablation", *args)
    table = open(os.path.join(out, "ablation.md")).read()
    assert "| fine | brightness |" in table and "| fine | mean |" in table
    assert f"Data: {pretrain_data}, sha256 " in table and "Backbone: " in table
    assert "(2 cells;" in table and "--seeds=0,1" in table
    assert table.split("| pair set |")[1].count("±") == 2 * 2  # 2 rows x (accuracy, truth)
    csv = open(os.path.join(out, "ablation.csv")).read().splitlines()
    assert "dacrl_accuracy_std" in csv[0] and len(csv) == 3
    cells = sorted(os.listdir(os.path.join(results, "smoke_ablation")))
    assert cells == [f"pair_set-fine__attribute-brightness__model-dacrl__seed-{s}.json"
                     for s in (0, 1)]
    record = json.load(open(os.path.join(results, "smoke_ablation", cells[0])))
    assert record["kind"] == "ablation" and record["config"]["seed"] == 0
    assert record["inputs"]["backbone_weights_sha256"] and record["data_sha256"]
    assert record["machine"]["cpu_flags"] and record["seconds"] > 0
    assert 0 <= record["metrics"]["accuracy"] <= 1 and "ablation" in record["command"]
    for seed in (0, 1):
        saved = run_config.load_run_config(os.path.join(out, "fine", "brightness", "dacrl",
                                                        f"seed{seed}"))
        assert saved.family.backbone_weights.endswith("vgg16_notop.h5")
        assert saved.train.seed == seed
    again = run_module("relattr_tf.ablation", *args)  # every cell is in the ledger: skipped
    assert not any(line.startswith("training ") for line in again.stdout.splitlines())
    assert again.stdout.count(": finished") == 2
    assert proc.stdout.strip().splitlines()[-1] in again.stdout
    # Another recipe in the same study is refused, naming the cell's file.
    other = run_module("relattr_tf.ablation", *args, "--head_lr=0.1", check=False)
    assert other.returncode == 1
    assert "finished with another recipe (head_lr changed)" in other.stderr
    docs = str(tmp_path / "docs")
    run_module("relattr_tf.report", "--study=smoke_ablation", f"--results_dir={results}",
               f"--out={docs}")
    generated = open(os.path.join(docs, "smoke_ablation.md")).read()
    assert generated.split("| pair set |")[1] == table.split("| pair set |")[1]
    assert os.path.exists(os.path.join(docs, "smoke_ablation.png"))


def test_the_gate_needs_every_head_and_every_probe_reading():
    from relattr_tf.evaluation import trunk_gate
    heads = [dict(name="cell"), dict(name="shape", ceiling=0.8)]
    probe = {"brightness": dict(spearman=0.95, spearman_random_trunk=0.97),
             "size": dict(spearman=0.6, spearman_random_trunk=0.4)}
    kinds = {"brightness": "global", "size": "local"}
    gate = trunk_gate.trunk_gate(heads, {"cell": 0.93, "shape": 0.81}, probe, kinds)
    assert gate["failed"] == ["probe brightness vs random trunk"] and not gate["passed"]
    assert "probe brightness vs random trunk 0.950 < 0.970" in trunk_gate.verdict_line(gate)
    probe["brightness"]["spearman"] = 0.98
    assert trunk_gate.trunk_gate(heads, {"cell": 0.93, "shape": 0.81}, probe, kinds)["passed"]
    gate = trunk_gate.trunk_gate(heads, {"cell": 0.89, "shape": 0.79}, dict(
        brightness=dict(spearman=0.85, spearman_random_trunk=0.8)), kinds)
    assert gate["failed"] == ["head cell", "head shape", "probe brightness"]


def test_the_pretrain_study_table_shows_every_check_and_the_bf16_difference(tmp_path):
    from relattr_tf.evaluation import ledger, studies, trunk_gate
    heads = [dict(name="cell"), dict(name="shape")]
    kinds = {"brightness": "global", "size": "local"}
    records = []
    for precision, cell_accuracy in (("float32", 0.95), ("mixed_bfloat16", 0.93)):
        accuracy = {"cell": cell_accuracy, "shape": 0.60}
        probe = {"brightness": dict(spearman=0.95, spearman_random_trunk=0.97),
                 "size": dict(spearman=0.6, spearman_random_trunk=0.4)}
        metrics = dict(heldout_accuracy=accuracy, chance_accuracy={"cell": 0.3, "shape": 0.5},
                       ceilings={"shape": 0.8 if precision == "float32" else 0.75},
                       heldout_images=100, probe=dict(attributes=probe, blocks={
                           "block1_pool": {"brightness": 0.99, "size": 0.2}}),
                       gate=trunk_gate.trunk_gate(heads, accuracy, probe, kinds))
        cell = dict(image_size=64, precision=precision, seed=0)
        records.append(ledger.record_of("pretrain", "trunk", cell, "python -m x", {}, metrics,
                                        60.0, "data/d", "abc"))
    table = studies.write_study(records, "trunk", "results", str(tmp_path / "trunk"))
    assert "| head cell (accuracy %) | 30.0 | 95.0 | 93.0 |" in table
    assert "| head shape (accuracy %) | 50.0 | **60.0** (< 90.0) | **60.0** (< 90.0) |" in table
    assert "| head shape: oracle ceiling (%) |  | 80.0 | 75.0 |" in table
    assert "| probe brightness (Spearman) | 0.97 / 0.97 | **0.95** (< 0.97) |" in table
    assert "| brightness at block1_pool, positions averaged (Spearman) |  | 0.99 | 0.99 |" in table
    assert "largest head difference, bf16 − float32 (points) |  | -2.0 (cell) | -2.0 (cell) |" \
        in table
    assert "| gate |  | FAILED | FAILED |" in table
    assert (tmp_path / "trunk.csv").exists()


def test_pretrain_heads_trains_a_subset_reading_each_label_from_the_tables_column(
        pretrain_data):
    """--pretrain_heads: the chosen heads read their own columns of the full label vector (a
    subset laid out as if alone would read another head's labels); an unknown name is a
    one-line error naming the flag."""
    from relattr_tf.models.scene_classifier import build_scene_classifier
    from relattr_tf.training import pretrain
    chosen = ("main_distractor_colour", "light_side")
    config = config_lib.Config(
        model="vgg16_scenes", data=config_lib.DataConfig(data_dir=pretrain_data, image_size=32),
        family=config_lib.PretrainConfig(width=0.125, pretrain_heads=chosen))
    task = pretrain.PretrainTask(config)
    heads = task._heads()
    assert [h["name"] for h in heads] == list(chosen)
    full = schema.label_columns(render.LABEL_HEADS)
    assert task.columns == full
    images, labels = _labelled_scenes(16, 32, seed=1)
    parts = build_scene_classifier(32, 0.125, render.LABEL_HEADS, 16, seed=0, trunk_init="he")
    whole = pretrain.SceneClassifier(parts.network, render.LABEL_HEADS)
    subset = pretrain.SceneClassifier(parts.network, heads, task.columns)
    logits = whole(images)
    for name, loss in subset.losses_by_head(labels, logits).items():
        np.testing.assert_allclose(float(loss), float(whole.losses_by_head(labels, logits)[name]))
    wrong = dataclasses.replace(config, family=dataclasses.replace(
        config.family, pretrain_heads=("main_distractor_color",)))
    with pytest.raises(schema.DataError, match="--pretrain_heads: main_distractor_color not"):
        pretrain.PretrainTask(wrong)._heads()


def test_first_heads_train_alone_for_their_steps_then_the_other_heads_join(pretrain_data):
    """--first_heads/--first_heads_steps: for the first steps the loss is the first heads' mean
    and the other heads' classifiers get no gradient; from that step on every head counts. A
    name the run does not train is a one-line error naming the flag."""
    from relattr_tf.models.scene_classifier import build_scene_classifier
    from relattr_tf.training import pretrain
    first = ("main_distractor_colour", "distractor_colours")
    parts = build_scene_classifier(32, 0.125, render.LABEL_HEADS, 16, seed=0, trunk_init="he")
    model = pretrain.SceneClassifier(parts.network, render.LABEL_HEADS, first_heads=first,
                                     first_heads_steps=2)
    model.compile({"all": keras.optimizers.SGD(0.1)}, {"all": parts.network.trainable_variables})
    images, labels = _labelled_scenes(16, 32, seed=2)

    def normalised_losses():
        losses = model.losses_by_head(labels, model(images))
        return {h["name"]: float(losses[h["name"]]) / pretrain.uniform_loss(h)
                for h in render.LABEL_HEADS}

    losses = normalised_losses()
    assert float(model._loss(labels, model(images))) == pytest.approx(
        np.mean([losses[name] for name in first]), rel=1e-5)
    kernel = lambda name: parts.network.get_layer(f"head_{name}").kernel.numpy().copy()
    before = {h["name"]: kernel(h["name"]) for h in render.LABEL_HEADS}
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    model.fit(data.repeat(2), epochs=1, verbose=0)  # steps 0 and 1: the first heads alone
    moved = {name: not np.array_equal(kernel(name), before[name]) for name in before}
    assert all(moved[name] for name in first)
    assert not any(v for name, v in moved.items() if name not in first)
    assert float(model._loss(labels, model(images))) == pytest.approx(
        np.mean(list(normalised_losses().values())), rel=1e-5)
    model.fit(data, epochs=1, verbose=0)  # step 2: every head
    assert all(not np.array_equal(kernel(name), before[name]) for name in before)
    config = config_lib.Config(
        model="vgg16_scenes", data=config_lib.DataConfig(data_dir=pretrain_data, image_size=32),
        family=config_lib.PretrainConfig(width=0.125, pretrain_heads=("subject_cell",),
                                         first_heads=("light_side",), first_heads_steps=5))
    with pytest.raises(schema.DataError, match="--first_heads: light_side not among the heads"):
        pretrain.PretrainTask(config)._heads()
    from relattr_tf.experiments import trunk_pretraining
    cell = trunk_pretraining.pretrain_cell(config)  # a curriculum is its own ledger cell
    assert (cell["first_heads"], cell["first_heads_steps"]) == ("light_side", 5)
    with pytest.raises(config_lib.ConfigError, match="--first_heads and --first_heads_steps"):
        config_lib.PretrainConfig(first_heads=("light_side",)).check()


def test_balanced_heads_scale_both_pulls_on_the_shared_layers_to_their_mean_norm():
    """--balanced_heads: one SGD step moves the trunk and the FC layer by the balanced heads'
    and the other heads' gradients, each scaled to the mean of their two norms; a head's own
    classifier by its plain gradient."""
    from relattr_tf.models.scene_classifier import build_scene_classifier
    from relattr_tf.training import pretrain
    balanced = ("main_distractor_colour", "distractor_colours")
    parts = build_scene_classifier(32, 0.125, render.LABEL_HEADS, 16, seed=0, trunk_init="he",
                                   dropout=0.0)
    model = pretrain.SceneClassifier(parts.network, render.LABEL_HEADS, balanced_heads=balanced)
    variables = parts.network.trainable_variables
    model.compile({"all": keras.optimizers.SGD(1.0)}, {"all": variables})
    images, labels = _labelled_scenes(16, 32, seed=3)
    with tf.GradientTape(persistent=True) as tape:
        terms = model._terms(labels, model(images, training=True))
        named = tf.reduce_sum(tf.gather(terms, model.balance_groups()[0]))
        rest = tf.reduce_sum(terms) - named
    pulls = [tape.gradient(part, variables) for part in (named, rest)]
    shared = {id(v) for name in ("trunk", "scene_fc")
              for v in parts.network.get_layer(name).trainable_variables}
    norms = [np.sqrt(sum(float(tf.reduce_sum(g * g)) for g, v in zip(p, variables)
                         if id(v) in shared)) for p in pulls]
    assert norms[0] < 0.9 * norms[1]  # the balanced heads pull less: the scaling matters here
    mean = sum(norms) / 2
    expected = [v.numpy() - ((mean / norms[0]) * a + (mean / norms[1]) * b if id(v) in shared
                             else a + b).numpy() for v, a, b in zip(variables, *pulls)]
    model.fit(tf.data.Dataset.from_tensors((images, labels)), epochs=1, verbose=0)
    for v, want in zip(variables, expected):
        np.testing.assert_allclose(v.numpy(), want, rtol=2e-4, atol=2e-6, err_msg=v.path)


def test_balanced_heads_each_weights_every_head_and_holds_the_weights_between_measurements():
    """--balanced_heads=each --balance_every=2: every head's pull on the shared layers is
    scaled to the heads' mean norm, measured at steps 0, 2, ... and held in between."""
    from relattr_tf.models.scene_classifier import build_scene_classifier
    from relattr_tf.training import pretrain
    heads = render.LABEL_HEADS[:4]
    parts = build_scene_classifier(32, 0.125, heads, 16, seed=0, trunk_init="he", dropout=0.0)
    model = pretrain.SceneClassifier(parts.network, heads, schema.label_columns(
        render.LABEL_HEADS), balanced_heads=("each",), balance_every=2)
    variables = parts.network.trainable_variables
    model.compile({"all": keras.optimizers.SGD(0.1)}, {"all": variables})
    shared = {id(v) for name in ("trunk", "scene_fc")
              for v in parts.network.get_layer(name).trainable_variables}
    batches = [_labelled_scenes(16, 32, seed=s) for s in (3, 4, 5)]

    def pulls(images, labels):
        with tf.GradientTape(persistent=True) as tape:
            terms = tf.unstack(model._terms(labels, model(images, training=True)))
        return [tape.gradient(term, variables) for term in terms]

    def norms(head_pulls):
        return np.array([np.sqrt(sum(float(tf.reduce_sum(g * g)) for g, v in zip(p, variables)
                                     if id(v) in shared)) for p in head_pulls])

    weights = None
    for step, (images, labels) in enumerate(batches):
        head_pulls = pulls(images, labels)
        if step % 2 == 0:
            n = norms(head_pulls)
            weights = n.mean() / n
        expected = [v.numpy() - 0.1 * sum((w if id(v) in shared else 1.0) * p[k].numpy()
                                          for w, p in zip(weights, head_pulls))
                    for k, v in enumerate(variables)]
        model.fit(tf.data.Dataset.from_tensors((images, labels)), epochs=1, verbose=0)
        np.testing.assert_allclose(model.balance_weights.numpy(), weights, rtol=1e-4)
        for v, want in zip(variables, expected):
            np.testing.assert_allclose(v.numpy(), want, rtol=2e-4, atol=2e-6, err_msg=v.path)
    assert weights.max() > 1.2 * weights.min()  # the heads pull unequally: weights matter


def test_balanced_heads_naming_every_trained_head_under_float16_or_out_of_step_is_an_error(
        pretrain_data):
    from relattr_tf.training import pretrain
    config = config_lib.Config(
        model="vgg16_scenes", data=config_lib.DataConfig(data_dir=pretrain_data, image_size=32),
        family=config_lib.PretrainConfig(width=0.125, pretrain_heads=("subject_cell",),
                                         balanced_heads=("subject_cell",)))
    with pytest.raises(schema.DataError, match="--balanced_heads names every trained head"):
        pretrain.PretrainTask(config)._heads()
    with pytest.raises(schema.DataError, match="--balanced_heads: light_side not among"):
        pretrain.PretrainTask(config.with_values(balanced_heads=("light_side",)))._heads()
    float16 = config.with_values(pretrain_heads=(), mixed_precision="mixed_float16")
    with pytest.raises(config_lib.ConfigError, match="--balanced_heads needs float32"):
        pretrain.PretrainTask(float16).check_config(1)
    unaligned = config.with_values(pretrain_heads=(), first_heads=("subject_cell",),
                                   first_heads_steps=30, balance_every=20)
    with pytest.raises(config_lib.ConfigError, match="multiple of --balance_every"):
        pretrain.PretrainTask(unaligned).check_config(1)
    pretrain.PretrainTask(unaligned.with_values(first_heads_steps=40)).check_config(1)


def test_a_pretrain_table_column_names_the_heads_a_cell_trained():
    from relattr_tf.evaluation import pretrain_table
    cell = dict(image_size=64, precision="float32", seed=0, heads="subject_cell+light_side")
    assert pretrain_table._column(cell).endswith("seed 0, heads subject_cell, light_side")
    each = dict(cell, balanced_heads="each", balance_every=20)
    assert pretrain_table._column(each).endswith(
        "light_side, every head balanced (measured every 20 steps)")
    del cell["heads"]
    assert "heads" not in pretrain_table._column(cell)
    cell.update(first_heads="main_distractor_colour+distractor_count", first_heads_steps=1600)
    assert pretrain_table._column(cell).endswith(
        "seed 0, first 1,600 steps main_distractor_colour, distractor_count alone")
