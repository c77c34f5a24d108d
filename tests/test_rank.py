"""rank: the Bradley-Terry aggregation on comparisons whose answer is known, then the command
on a folder of mixed files as a user would run it."""
import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import stats

from relattr_tf.artifacts import pair_model as export
from relattr_tf.visualization import ranking
from tests.cli import run_module
from tests.test_visualize import SIZE, finished_model_dir


def test_bradley_terry_recovers_the_strengths_that_made_the_preferences():
    rng = np.random.default_rng(0)
    strengths = rng.normal(scale=2.0, size=40)
    for pairs in (ranking.sampled_pairs(40, 0, all_pairs_limit=40),
                  ranking.sampled_pairs(40, 6, all_pairs_limit=10, seed=1)):
        preference = 1 / (1 + np.exp(-(strengths[pairs[:, 0]] - strengths[pairs[:, 1]])))
        fitted = ranking.bradley_terry(40, pairs, preference)
        np.testing.assert_allclose(fitted - fitted.mean(), strengths - strengths.mean(),
                                   atol=0.05)
    assert len(ranking.sampled_pairs(40, 0, all_pairs_limit=40)) == 40 * 39 // 2
    sampled = ranking.sampled_pairs(40, 6, all_pairs_limit=10, seed=1)
    assert np.all(sampled[:, 0] < sampled[:, 1]) and len(np.unique(sampled, axis=0)) == len(
        sampled)
    assert set(np.unique(sampled)) == set(range(40))  # every image is compared


def test_cyclic_triads_are_counted():
    pairs = np.array([[0, 1], [1, 2], [0, 2]])
    assert ranking.cyclic_triads(pairs, np.array([0.9, 0.9, 0.1]), samples=50) == (1.0, 1)
    assert ranking.cyclic_triads(pairs, np.array([0.9, 0.9, 0.9]), samples=50) == (0.0, 1)
    assert ranking.cyclic_triads(pairs[:2], np.array([0.9, 0.9]), samples=50) == (None, 0)
    assert ranking.cyclic_triads(pairs, np.array([0.9, 0.5, 0.1]), samples=50) == (None, 0)
    # Two triads, one cyclic (0 > 1 > 2 > 0), one not (0 > 1, 1 > 3, 0 > 3): about half.
    pairs = np.array([[0, 1], [1, 2], [0, 2], [1, 3], [0, 3]])
    share, distinct = ranking.cyclic_triads(pairs, np.array([0.9, 0.9, 0.1, 0.9, 0.9]))
    assert distinct == 2 and 0.3 < share < 0.7


class BrightnessComparator:
    """A stand-in for DACRL's export: features = mean pixel, p = sigmoid(20 (f_a - f_b))."""

    def features(self, image):
        return {"features": tf.reduce_mean(image, axis=[1, 2, 3], keepdims=True)}

    def compare(self, features_a, features_b):
        return {"p": tf.sigmoid(20.0 * (features_a - features_b))[:, 0, 0]}


def test_pairwise_comparisons_aggregate_into_the_true_order():
    rng = np.random.default_rng(2)
    levels = rng.permutation(np.linspace(20, 230, 30)).astype(np.uint8)
    images = np.broadcast_to(levels[:, None, None, None], (30, 8, 8, 3)).copy()
    for limit in (200, 10):  # every pair; 8 random comparisons per image
        scores, details = ranking.score_images(BrightnessComparator(), images, comparisons=8,
                                               all_pairs_limit=limit)
        rho = stats.spearmanr(scores, levels).statistic
        assert rho == pytest.approx(1.0) if limit == 200 else rho > 0.99  # sampled: near
        assert details["method"] == "bradley_terry" and details["all_pairs"] == (limit == 200)
        assert details["order_agreement"] == 1.0 and details["swap_disagreement"] == 0.0
        assert details["swap_inconsistency"] < 1e-6
        assert details["cyclic_triads"] == 0.0 and details["triads_sampled"] > 0
        if limit == 200:
            assert details["triads_sampled"] > 1000  # many distinct ones among 30 images
    for count in (1, 2, 3):  # the fewest images a folder may hold
        scores, details = ranking.score_images(BrightnessComparator(), images[:count])
        assert list(np.argsort(-scores)) == list(np.argsort(-levels[:count].astype(int)))
    assert details["cyclic_triads"] == 0.0


def _write_user_images(folder):
    """Readable images of several formats and sizes (one nested), a truncated PNG and a text
    file; returns the readable files and the pixels the 32 px PNG holds."""
    rng = np.random.default_rng(3)
    os.makedirs(folder / "nested")
    exact = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    Image.fromarray(exact).save(folder / "exact.png")
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(
        folder / "wide.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(folder / "grey.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(
        folder / "nested" / "alpha.webp")
    Image.fromarray(np.full((SIZE, SIZE), 0x7FFF, np.uint16)).save(folder / "deep.png")  # 16 bit
    (folder / "broken.png").write_bytes((folder / "exact.png").read_bytes()[:100])
    (folder / "notes.txt").write_text("not an image")
    readable = [folder / n for n in ("exact.png", "wide.jpg", "grey.png", "nested/alpha.webp",
                                     "deep.png")]
    return sorted(str(p) for p in readable), exact


def test_images_are_read_as_training_reads_them_and_bad_files_listed(tmp_path):
    readable, exact = _write_user_images(tmp_path / "photos")
    paths = ranking.find_images(str(tmp_path / "photos"))
    images, kept, skipped = ranking.read_images(paths, SIZE)
    assert kept == readable and images.shape == (5, SIZE, SIZE, 3)
    np.testing.assert_array_equal(images[kept.index(str(tmp_path / "photos" / "exact.png"))],
                                  exact)  # the training size: untouched
    # 16 bits to 8 as TensorFlow's PNG decoder: the high byte 0x7F, not clipped to 255
    deep = str(tmp_path / "photos" / "deep.png")
    assert np.all(images[kept.index(deep)] == 0x7F)
    np.testing.assert_array_equal(images[kept.index(deep)], tf.io.decode_png(
        open(deep, "rb").read(), channels=3, dtype=tf.uint8).numpy())
    assert {os.path.basename(p): r.split(":")[0] for p, r in skipped} == {
        "broken.png": "OSError", "notes.txt": "UnidentifiedImageError"}
    assert ranking.find_images(str(tmp_path / "photos" / "*.png")) == sorted(
        str(tmp_path / "photos" / n) for n in ("broken.png", "deep.png", "exact.png",
                                               "grey.png"))
    os.rename(tmp_path / "photos", tmp_path / "photos [2023]")  # a folder, not a pattern
    assert len(ranking.find_images(str(tmp_path / "photos [2023]"))) == 7
    with pytest.raises(FileNotFoundError, match="--images=.*nowhere: neither a folder"):
        ranking.find_images(str(tmp_path / "nowhere"))


@pytest.fixture(scope="module")
def pair_model_dirs(tiny_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rank_models")
    return {name: finished_model_dir(root / name, name, tiny_data_dir)[0]
            for name in ("dacrl", "ranknet")}


def _ranking_rows(out):
    with open(out / "ranking.csv") as f:
        return list(csv.DictReader(f))


def test_rank_command_ranks_a_folder_with_dacrl(pair_model_dirs, tmp_path):
    readable, _ = _write_user_images(tmp_path / "photos")
    out = tmp_path / "ranked"
    proc = run_module("relattr_tf.rank", f"--model_dir={pair_model_dirs['dacrl']}",
                      f"--images={tmp_path / 'photos'}", f"--out={out}")
    rows = _ranking_rows(out)
    assert sorted(r["file"] for r in rows) == readable
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    with open(out / "skipped.csv") as f:
        assert sorted(os.path.basename(r["file"]) for r in csv.DictReader(f)) == [
            "broken.png", "notes.txt"]
    summary = json.load(open(out / "ranking.json"))
    assert summary["method"] == "bradley_terry" and summary["compared_pairs"] == 10
    assert summary["images"] == 5 and summary["skipped"] == 2 and summary["files"] == 7
    assert os.path.exists(out / "ranking.png")
    assert "skipped" in proc.stdout and "ranked 5 images by tilt with dacrl" in proc.stdout


def test_score_models_rank_by_their_score(pair_model_dirs, tmp_path):
    _write_user_images(tmp_path / "photos")
    out = tmp_path / "ranked"
    summary = ranking.rank(pair_model_dirs["ranknet"], str(tmp_path / "photos"), str(out))
    assert summary["method"] == "score"
    rows = _ranking_rows(out)
    images, kept, _ = ranking.read_images([r["file"] for r in rows], SIZE)
    exported = export.load_exported(pair_model_dirs["ranknet"])
    scores = exported.score(image=tf.constant(images, tf.float32) / 255.0)["score"].numpy()
    assert list(np.argsort(-scores.ravel(), kind="stable")) == [0, 1, 2, 3, 4]  # rank 1 first


def test_a_folder_without_any_readable_image_is_a_one_line_error(pair_model_dirs, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"none of its 1 files is an image Pillow reads"):
        ranking.rank(pair_model_dirs["ranknet"], str(tmp_path / "photos"), str(tmp_path / "out"))
    with open(tmp_path / "out" / "skipped.csv") as f:
        assert [r["file"] for r in csv.DictReader(f)] == [str(tmp_path / "photos" / "notes.txt")]
