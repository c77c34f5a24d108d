"""The ATTIC experiment's baselines and their training sets, beside ATTIC's own pairs:

    real_plus         pseudo pairs: random pairs of the generator's training images, labelled
                      by their attribute strengths
    jitter            a jittered copy of each real pair (translation, scale, rotation, contrast,
                      colour), labels kept
    semantic_jitter   generated pairs changing one attribute by a fixed policy (a fine-grained
                      step, the rest fixed), labelled like ATTIC's

Each is appended to the data directory once as its own image table and pair split; a rerun
finds it there. `cell` is an experiments.attic_experiment.Cell.
"""
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from relattr_tf.artifacts import generator as generator_artifact, rounds
from relattr_tf.artifacts.run_config import load_run_config
from relattr_tf.data import pipeline, schema, writer
from relattr_tf.data.images import decode_to_uint8, read_records
from relattr_tf.data.synthetic import crowd as crowd_lib
from relattr_tf.evaluation import generator as generator_eval, report
from relattr_tf.labelling import package, simulated_crowd


def generator(cell):
    return generator_artifact.load_generator(cell.config.family.generator_dir)


def generator_attribute(cell):
    net = cell.config.family
    return net.generator_attribute or net.attribute


def _decode_pairs(decoder, info, y_a, y_b, z_a, z_b, image_size):
    images = []
    for y, z in ((y_a, z_a), (y_b, z_b)):
        out = generator_artifact.decode_images(decoder, y, z)
        if out.shape[1] != image_size:
            out = tf.image.resize(out, (image_size, image_size)).numpy()
        images.append(out)
    return tuple(images)


def semantic_jitter_pairs(cell, count, key):
    """`count` pairs with the attribute alone changed by the policy's step; (images, y)."""
    decoder, info = generator(cell)
    rng = crowd_lib.pair_rng(cell.config.train.seed, "semantic-jitter", key)
    y_a, y_b = generator_eval.step_strengths(info, generator_attribute(cell), count, rng)
    z = rng.normal(size=(count, info["z_size"]))
    images = _decode_pairs(decoder, info, y_a, y_b, z, z, cell.config.data.image_size)
    return images, (y_a, y_b), info


def write_package(cell, directory, images, y, info, name):
    """The labelling package of generated pairs, written once; returns its directory."""
    if not os.path.exists(os.path.join(directory, package.PAIRS_FILE)):
        package.write_package(directory, images, y, attribute=cell.config.family.attribute,
                              generator_attribute=generator_attribute(cell),
                              attribute_names=info["attributes"], prefix=name)
    return directory


def labelled_split(cell, directory, name, auto=False):
    """Labels a package (the simulated crowd, or y) into split `name` once; returns it."""
    done = os.path.join(directory, rounds.LABELS_FILE)
    if not os.path.exists(done):
        if auto:
            summary = package.auto_labels(directory, cell.config.data.data_dir, name,
                                          command=cell.command)
        else:
            answers = simulated_crowd.write_crowd_export(
                package.read(directory), os.path.join(directory, rounds.CROWD_EXPORT_FILE),
                seed=cell.config.train.seed)
            net = cell.config.family
            summary = package.import_labels(answers, directory, cell.config.data.data_dir,
                                            name, min_agreement=net.min_agreement,
                                            min_confidence=net.min_confidence,
                                            command=cell.command)
        report.write_json(done, summary)
    with open(done) as f:
        return name if json.load(f)["accepted"] else None


def _table_images(data_dir, meta, tables):
    """{image id: (encoded bytes, strengths)} of image tables."""
    out = {}
    for table in tables:
        entry = schema.image_table(meta, data_dir, table)
        for record in read_records(schema.shard_paths(data_dir, entry, f"image table {table}")):
            parsed = schema.decode_record(record.numpy())
            out[parsed[schema.ID]] = (parsed[schema.IMAGE], parsed[schema.STRENGTHS])
    return out


def real_plus_split(cell, count):
    """`count` pseudo pairs: random pairs of the generator's training images (their own data
    directory), labelled by their strengths; copied into the data directory once."""
    data_dir, net = cell.config.data.data_dir, cell.config.family
    name = f"{cell.prefix}-{net.attribute}-realplus-n{count}"
    meta = schema.read_metadata(data_dir)
    if name in meta.get("splits", {}).get(net.attribute, {}):
        return name
    source = load_run_config(os.path.dirname(os.path.normpath(net.generator_dir)))
    source_meta = schema.read_metadata(source.data.data_dir)
    k = list(source_meta["strength_names"]).index(generator_attribute(cell))
    images = _table_images(source.data.data_dir, source_meta, [source.family.image_table])
    ids = sorted(i for i, (_, s) in images.items() if len(s) > k and np.isfinite(s[k]))
    rng = np.random.default_rng([cell.config.train.seed, 11])
    chosen = rng.choice(len(ids), size=(count, 2), replace=len(ids) < 2 * count)
    used = sorted({ids[i] for pair in chosen for i in pair})
    records = [dict(image=images[i][0], image_id=f"{name}/{i}", source="real_plus")
               for i in used]
    pairs = []
    for a, b in chosen:
        strength_a, strength_b = images[ids[a]][1][k], images[ids[b]][1][k]
        target = 1.0 if strength_a > strength_b else 0.0 if strength_a < strength_b else 0.5
        pairs.append(dict(id_a=f"{name}/{ids[a]}", id_b=f"{name}/{ids[b]}",
                          attribute=net.attribute, target=target, source="real_plus",
                          split=name))
    writer.add_to_data_dir(data_dir, images=records, table=name, pairs=pairs,
                           command=cell.command)
    return name


def jitter(image, rng):
    """Low-level jitter of one uint8 image: translation, scale, rotation, contrast, colour."""
    size = image.shape[0]
    picture = Image.fromarray(image)
    angle, scale = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.06, 0.06, 2) * size
    picture = picture.rotate(angle, resample=Image.BILINEAR, translate=tuple(shift))
    if scale != 1.0:
        big = picture.resize((round(size * scale),) * 2, Image.BILINEAR)
        offset = (big.size[0] - size) // 2
        picture = big.crop((offset, offset, offset + size, offset + size)) if offset >= 0 else \
            big.resize((size, size), Image.BILINEAR)
    x = np.asarray(picture, np.float32) / 255.0
    x = (x - x.mean()) * rng.uniform(0.9, 1.1) + x.mean()  # contrast
    x = x * rng.uniform(0.95, 1.05, 3)  # colour
    return np.clip(x, 0.0, 1.0)


def jitter_split(cell, real_split):
    """A jittered copy of every pair of `real_split`, labels kept."""
    data_dir, net = cell.config.data.data_dir, cell.config.family
    name = f"{real_split}-jitter"
    meta = schema.read_metadata(data_dir)
    if name in meta.get("splits", {}).get(net.attribute, {}):
        return name
    pairs = pipeline.read_pairs(meta, data_dir, net.attribute, real_split)
    tables = pipeline.image_tables_of(meta, data_dir, net.attribute, [real_split])
    images = _table_images(data_dir, meta, tables)
    rng = np.random.default_rng([cell.config.train.seed, 13])
    records, new_pairs = [], []
    for index, (a, b, target) in enumerate(zip(pairs[schema.ID_A], pairs[schema.ID_B],
                                               pairs[schema.TARGET])):
        ids = []
        for side, image_id in (("a", a.decode()), ("b", b.decode())):
            new_id = f"{name}/{index}{side}"
            pixels = decode_to_uint8(tf.constant(images[image_id][0]),
                                     cell.config.data.image_size).numpy()
            records.append(dict(image=package.png_bytes(jitter(pixels, rng)), image_id=new_id,
                                source="jitter"))
            ids.append(new_id)
        new_pairs.append(dict(id_a=ids[0], id_b=ids[1], attribute=net.attribute,
                              target=float(target), source="jitter", split=name))
    writer.add_to_data_dir(data_dir, images=records, table=name, pairs=new_pairs,
                           command=cell.command)
    return name
