"""The tf.data reader over a data directory."""

import numpy as np
import pytest
import tensorflow as tf

from relattr_tf.data import pipeline, schema

CONFIG = pipeline.InputConfig(batch_size=8, image_size=32, augment=())


def _collect(ds):
    pairs = []
    for (a, b), t, info in ds:
        for k in range(t.shape[0]):
            pairs.append((info["id_a"][k].numpy(), info["id_b"][k].numpy(), float(t[k]),
                          float(info["true_target"][k]), a[k].numpy(), b[k].numpy()))
    return pairs


def test_eval_keeps_every_pair_once_including_equal_pairs(tiny_data_dir):
    meta = schema.read_metadata(tiny_data_dir)
    expected = meta["splits"]["brightness"]["test_fine"]
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "test_fine", CONFIG, training=False,
                               with_info=True)
    pairs = _collect(ds)
    assert len(pairs) == expected["pairs"]
    assert sum(p[2] == 0.5 for p in pairs) == expected["equal_pairs"]
    a = pairs[0][4]
    assert a.shape == (32, 32, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1


def test_training_swap_adds_each_pair_reversed_with_complement_target(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=(), swap=True)
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "train", config, training=True,
                               seed=1, with_info=True)
    pairs = _collect(ds)
    n = schema.read_metadata(tiny_data_dir)["splits"]["brightness"]["train"]["pairs"]
    assert len(pairs) == (2 * n) // 4 * 4  # doubled, then full batches only
    by_ids = {(p[0], p[1]): p for p in pairs}
    matched = 0
    for (ia, ib), p in by_ids.items():
        if (ib, ia) in by_ids:
            q = by_ids[(ib, ia)]
            assert p[2] == pytest.approx(1 - q[2])
            assert p[3] == pytest.approx(1 - q[3])
            np.testing.assert_array_equal(p[4], q[5])
            matched += 1
    assert matched >= len(by_ids) * 0.9


def test_batches_are_full_when_training_and_shapes_follow_image_size(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=5, image_size=48)
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "train", config, training=True,
                               seed=0)
    for (a, b), t in ds.take(3):
        assert a.shape == (5, 48, 48, 3) and b.shape == (5, 48, 48, 3) and t.shape == (5,)


def test_augmentation_is_reproducible_with_a_seed_and_flip_is_dropped_for_tilt(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=("flip", "translate"))
    first = [x[0][0].numpy() for x in pipeline.make_dataset(
        tiny_data_dir, "brightness", "train", config, training=True, seed=7).take(2)]
    second = [x[0][0].numpy() for x in pipeline.make_dataset(
        tiny_data_dir, "brightness", "train", config, training=True, seed=7).take(2)]
    np.testing.assert_array_equal(first[1], second[1])
    meta = schema.read_metadata(tiny_data_dir)
    assert pipeline.allowed_augmentations(meta, "tilt", ("flip", "crop")) == ("crop",)
    with pytest.raises(ValueError, match="unknown augmentation"):
        pipeline.allowed_augmentations(meta, "tilt", ("rotate",))


def test_reader_errors_are_one_line_and_name_the_problem(tiny_data_dir, tmp_path):
    with pytest.raises(schema.DataError, match="make_synthetic"):
        pipeline.make_dataset(str(tmp_path / "nowhere"), "brightness", "train", CONFIG,
                              training=True)
    with pytest.raises(schema.DataError, match="unknown attribute 'shiny'; known: brightness, "
                                               "tilt"):
        pipeline.make_dataset(tiny_data_dir, "shiny", "train", CONFIG, training=True)
    with pytest.raises(schema.DataError, match="known: test, test_fine, train, train_fine"):
        pipeline.make_dataset(tiny_data_dir, "brightness", "val", CONFIG, training=True)


def test_corrupt_shard_is_named_or_skipped_when_asked(tiny_data_dir, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data_dir, copy)
    shard = sorted((copy / "brightness").glob("test-*"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated gzip
    ds = pipeline.make_dataset(str(copy), "brightness", "test", CONFIG, training=False)
    files = pipeline.shard_files(str(copy), "brightness", "test")
    with pytest.raises(schema.DataError, match=rf"{shard.name}: corrupt or truncated shard"):
        try:
            for _ in ds:
                pass
        except tf.errors.OpError as e:
            pipeline.raise_for_unreadable(files, e)
    skipping = pipeline.InputConfig(batch_size=8, image_size=32, augment=(), skip_corrupt=True)
    ds = pipeline.make_dataset(str(copy), "brightness", "test", skipping, training=False)
    count = sum(int(t.shape[0]) for _, t in ds)
    total = schema.read_metadata(str(copy))["splits"]["brightness"]["test"]["pairs"]
    assert 0 < count < total


def test_image_records_serve_the_generator_split(tiny_data_dir):
    ds = pipeline.make_image_dataset(tiny_data_dir, batch_size=4, image_size=32)
    images, strengths = next(iter(ds))
    assert images.shape == (4, 32, 32, 3) and strengths.shape == (4, 8)
