"""The tf.data readers: pairs joined to images in tf.data, mixing, continuation, single images."""
import shutil

import numpy as np
import pytest
import tensorflow as tf

from relattr_tf.data import pipeline, schema, writer

CONFIG = pipeline.InputConfig(batch_size=8, image_size=32, augment=())


def _collect(ds, batches=None):
    pairs = []
    for (a, b), t, info in (ds if batches is None else ds.take(batches)):
        for k in range(t.shape[0]):
            pairs.append((info["id_a"][k].numpy(), info["id_b"][k].numpy(), float(t[k]),
                          float(info["true_target"][k]), a[k].numpy(), b[k].numpy()))
    return pairs


def _images_by_id(data_dir, table):
    images = {}
    for path in schema.shard_paths(data_dir, schema.read_metadata(data_dir)["images"][table],
                                   table):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            parsed = schema.decode_record(record.numpy())
            images[parsed["id"].encode()] = tf.io.decode_png(parsed["image"]).numpy()
    return images


def test_eval_keeps_every_pair_once_with_the_right_images(tiny_data_dir):
    meta = schema.read_metadata(tiny_data_dir)
    expected = meta["splits"]["brightness"]["test_fine"]
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "test_fine", CONFIG, training=False,
                               with_info=True)
    pairs = _collect(ds)
    assert len(pairs) == expected["pairs"]
    assert sum(p[2] == 0.5 for p in pairs) == expected["equal_pairs"]
    images = _images_by_id(tiny_data_dir, "test")
    for id_a, id_b, _, _, a, b in pairs:  # the join gave each id its own pixels
        np.testing.assert_allclose(a, images[id_a] / 255.0, atol=1e-6)
        np.testing.assert_allclose(b, images[id_b] / 255.0, atol=1e-6)
    assert a.shape == (32, 32, 3) and a.dtype == np.float32


def test_training_swap_adds_each_pair_reversed_with_complement_target(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=(), swap=True)
    n = schema.read_metadata(tiny_data_dir)["splits"]["brightness"]["train"]["pairs"]
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "train", config, training=True,
                               seed=1, with_info=True)
    pairs = _collect(ds, batches=(2 * n) // 4)  # the first pass
    assert len(pairs) == (2 * n) // 4 * 4
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


def test_held_out_validation_pairs_never_reach_training(tiny_data_dir):
    """--val_fraction: a seeded part of the training split's pairs is validation only."""
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=(), swap=True)
    n = schema.read_metadata(tiny_data_dir)["splits"]["brightness"]["train"]["pairs"]
    held = lambda seed: {(p[0], p[1]) for p in _collect(pipeline.make_dataset(
        tiny_data_dir, "brightness", "train", CONFIG, training=False, with_info=True,
        hold_out=(0.25, seed)))}
    validation = held(3)
    assert 0.1 * n < len(validation) < 0.4 * n and validation == held(3) != held(4)
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "train", config, training=True,
                               seed=1, with_info=True, hold_out=(0.25, 3))
    trained = {(p[0], p[1]) for p in _collect(ds, batches=2 * n // 4)}  # a pass and more
    assert not trained & validation  # neither order of a held-out pair is trained on
    assert not {(b, a) for a, b in trained} & validation
    assert len({frozenset(p) for p in trained}) == n - len(validation)


def test_batches_are_full_when_training_and_shapes_follow_image_size(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=5, image_size=48)
    ds = pipeline.make_dataset(tiny_data_dir, "brightness", "train", config, training=True,
                               seed=0)
    for (a, b), t in ds.take(3):
        assert a.shape == (5, 48, 48, 3) and b.shape == (5, 48, 48, 3) and t.shape == (5,)


def test_stream_is_reproducible_and_a_resumed_stream_continues_it(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=("flip", "translate"))
    make = lambda **kw: pipeline.make_dataset(tiny_data_dir, "brightness", "train", config,
                                              training=True, seed=7, **kw)
    whole = [(a.numpy(), t.numpy()) for (a, _), t in make().take(45)]
    again = [(a.numpy(), t.numpy()) for (a, _), t in make().take(45)]
    resumed = [(a.numpy(), t.numpy()) for (a, _), t in make(start_batch=30).take(15)]
    for x, y in zip(whole, again):
        np.testing.assert_array_equal(x[0], y[0])
    for x, y in zip(whole[30:], resumed):  # batch 30 onwards, augmentation included
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    # A pass is 2 x 40 / 4 = 20 batches: the second pass is shuffled anew, not replayed.
    assert not all(np.array_equal(whole[k][1], whole[k + 20][1]) for k in range(20))


def test_augmentation_shifts_and_flips_whole_pixels_and_flip_is_dropped_for_tilt(tiny_data_dir):
    images = tf.random.stateless_uniform((6, 32, 32, 3), (1, 2))
    config = pipeline.InputConfig(image_size=32, translate_pixels=4)
    shifted = pipeline.augment_batch(images, tf.constant([3, 4], tf.int64), ("translate",),
                                     config).numpy()
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    for k in range(6):  # each image is one of the 25 whole-pixel shifts of its padded copy
        assert any(np.allclose(shifted[k], padded[k, dy:dy + 32, dx:dx + 32], atol=1e-6)
                   for dy in range(5) for dx in range(5))
    flipped = pipeline.augment_batch(images, tf.constant([3, 4], tf.int64), ("flip",),
                                     config).numpy()
    for k in range(6):
        assert (np.array_equal(flipped[k], images[k].numpy())
                or np.array_equal(flipped[k], images[k].numpy()[:, ::-1]))
    meta = schema.read_metadata(tiny_data_dir)
    assert pipeline.allowed_augmentations(meta, "tilt", ("flip", "crop")) == ("crop",)
    with pytest.raises(ValueError, match="unknown augmentation"):
        pipeline.allowed_augmentations(meta, "tilt", ("rotate",))


def test_encoded_images_over_the_memory_budget_give_the_same_batches(tiny_data_dir):
    decoded = pipeline.make_dataset(tiny_data_dir, "brightness", "test", CONFIG,
                                    training=False, with_info=True)
    small = pipeline.InputConfig(batch_size=8, image_size=32, augment=(), image_memory_mb=0)
    store = pipeline.ImageStore(tiny_data_dir, ["test"], 32, memory_mb=0)
    assert not store.decoded
    encoded = pipeline.make_dataset(tiny_data_dir, "brightness", "test", small,
                                    training=False, with_info=True, store=store)
    for x, y in zip(_collect(decoded), _collect(encoded)):
        np.testing.assert_array_equal(x[4], y[4])


def test_a_grown_data_dir_mixes_two_splits_in_training(tiny_data_dir, tmp_path):
    data_dir = str(tmp_path / "grown")
    shutil.copytree(tiny_data_dir, data_dir)
    images = _images_by_id(data_dir, "test")
    new = [dict(image=tf.io.encode_png(pixels).numpy(), image_id=f"new-{k}", source="test",
                strengths=[float(k)]) for k, pixels in enumerate(list(images.values())[:6])]
    pairs = [dict(id_a=f"new-{k}", id_b=f"new-{(k + 1) % 6}", attribute="brightness",
                  split="extra", target=1.0, source="test") for k in range(6)]
    writer.add_to_data_dir(data_dir, table="round-01", images=new, pairs=pairs,
                           command="test")
    meta = schema.read_metadata(data_dir)
    assert meta["splits"]["brightness"]["extra"]["image_tables"] == ["round-01"]
    config = pipeline.InputConfig(batch_size=8, image_size=32, augment=(), swap=False)
    ds = pipeline.make_dataset(data_dir, "brightness", {"train": 1.0, "extra": 1.0}, config,
                               training=True, seed=0, with_info=True)
    ids = [p[0].decode() for p in _collect(ds, batches=10)]
    extra = sum(i.startswith("new-") for i in ids)
    assert 0.3 < extra / len(ids) < 0.7  # about half, as the weights ask


def test_reader_errors_are_one_line_and_name_the_problem(tiny_data_dir, tmp_path):
    with pytest.raises(schema.DataError, match="make_synthetic"):
        pipeline.make_dataset(str(tmp_path / "nowhere"), "brightness", "train", CONFIG,
                              training=True)
    with pytest.raises(schema.DataError, match="unknown attribute 'shiny'; known: brightness, "
                                               "tilt"):
        pipeline.make_dataset(tiny_data_dir, "shiny", "train", CONFIG, training=True)
    with pytest.raises(schema.DataError, match="known: test, test_fine, train, train_fine"):
        pipeline.make_dataset(tiny_data_dir, "brightness", "val", CONFIG, training=True)
    copy = tmp_path / "missing"
    shutil.copytree(tiny_data_dir, copy)
    writer.add_to_data_dir(str(copy), pairs=[dict(
        id_a="nobody", id_b="syn-0000001", attribute="brightness", split="bad", target=1.0,
        source="test")], image_tables=["train"])
    with pytest.raises(schema.DataError, match="brightness/bad: 1 pairs name images that are "
                                               "not in the image tables train.*nobody"):
        pipeline.make_dataset(str(copy), "brightness", "bad", CONFIG, training=True)


def test_corrupt_shard_is_named_or_skipped_when_asked(tiny_data_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data_dir, copy)
    shard = sorted((copy / "pairs" / "brightness").glob("test-*"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated gzip
    ds = pipeline.make_dataset(str(copy), "brightness", "test", CONFIG, training=False)
    meta = schema.read_metadata(str(copy))
    files = pipeline.pair_split_files(meta, str(copy), "brightness", "test")
    with pytest.raises(schema.DataError, match=rf"{shard.name}: corrupt or truncated shard"):
        try:
            for _ in ds:
                pass
        except tf.errors.OpError as e:
            pipeline.raise_for_unreadable(files, e)
    skipping = pipeline.InputConfig(batch_size=8, image_size=32, augment=(), skip_corrupt=True)
    ds = pipeline.make_dataset(str(copy), "brightness", "test", skipping, training=False)
    count = sum(int(t.shape[0]) for _, t in ds)
    assert 0 < count < meta["splits"]["brightness"]["test"]["pairs"]


def test_only_data_loss_errors_trigger_the_shard_rescan(tmp_path):
    with pytest.raises(tf.errors.InvalidArgumentError):  # raised as it is, no file read
        pipeline.raise_for_unreadable([str(tmp_path / "never-read")],
                                      tf.errors.InvalidArgumentError(None, None, "shape"))


def test_single_images_with_strengths_shuffled_repeated_and_held_out(tiny_data_dir):
    config = pipeline.InputConfig(batch_size=4, image_size=32, augment=())
    meta = schema.read_metadata(tiny_data_dir)
    count = meta["images"]["generator"]["count"]
    train = pipeline.make_image_dataset(tiny_data_dir, "generator", config, part="train",
                                        validation_fraction=0.25, training=True, seed=1)
    images, strengths = next(iter(train))
    assert images.shape == (4, 32, 32, 3) and strengths.shape == (4, 8)
    assert len(list(train.take(3 * count))) == 3 * count  # endless
    validation = pipeline.make_image_dataset(tiny_data_dir, "generator", config,
                                             part="validation", validation_fraction=0.25,
                                             training=False)
    held_out = sum(int(x.shape[0]) for x, _ in validation)
    assert 0 < held_out < count
    store = pipeline.ImageStore(tiny_data_dir, ["generator"], 32)
    rows = pipeline.validation_rows(store.ids, 0.25)
    assert rows.sum() == held_out
