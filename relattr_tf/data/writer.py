"""Writing records into a data directory: shard files, and growing a directory in place.

The Beam jobs and `add_to_data_dir` place records the same way (schema.shard_of on a sort key,
records sorted inside a shard), so the same records always land in the same shards.

    add_to_data_dir("data/synthetic", table="synthetic-round-01", images=[...],
                    pairs=[...], command="...")

adds an image table and pair splits to an existing data directory and updates metadata.json
atomically. A table or split of the same name is replaced, nothing else; the replaced shard
files are deleted only after metadata.json points at the new ones.
"""
import hashlib
import time

import numpy as np
import tensorflow as tf

from relattr_tf.data import schema
from relattr_tf.data.images import read_records


def write_shard(path, records):
    """Writes serialized records into one gzip TFRecord file (creating its folder)."""
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])  # TFRecordWriter does not create folders
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)


def write_sorted_shard(path, keyed_records):
    """Writes (sort_key, record) pairs as one shard, sorted by (key, record): the same records
    give the same file in whatever order they come (the Beam jobs' WriteShard uses it too)."""
    write_shard(path, [record for _, record in sorted(keyed_records)])


def write_record_set(data_dir, prefix, keyed_records, num_shards=0, tag=""):
    """Writes (sort_key, record) pairs as one shard set; returns count, bytes and shard names."""
    total = sum(len(record) for _, record in keyed_records)
    count = schema.shard_count(total, num_shards)
    buckets = [[] for _ in range(count)]
    for key, record in keyed_records:
        buckets[schema.shard_of(key, count)].append((key, record))
    names = []
    for index, bucket in enumerate(buckets):
        name = schema.shard_name(prefix, index, count, tag)
        write_sorted_shard(schema.join(data_dir, name), bucket)
        names.append(name)
    return dict(count=len(keyed_records), bytes=total, shards=names)


def _tag(keyed_records):
    """A content hash: a rewritten set gets new file names, the same content the same ones."""
    digest = hashlib.sha256()
    for key, record in sorted(keyed_records):
        digest.update(record)
    return digest.hexdigest()[:8]


def add_to_data_dir(data_dir, *, images=(), table=None, pairs=(), image_tables=None,
                    command="", num_shards=0):
    """Adds an image table and/or pair splits to an existing (version 2) data directory.

    images: dicts of schema.encode_image's arguments, written as image table `table`.
    pairs: dicts of schema.encode_pair's arguments; one split per (attribute, split) in them,
      whose ids refer to `image_tables` (default: [table]).
    Returns the updated metadata.
    """
    meta = schema.read_metadata(data_dir)
    replaced = []
    if images:
        if not table:
            raise ValueError("add_to_data_dir: images need a table name")
        ids = [image["image_id"] for image in images]
        if len(set(ids)) < len(ids):
            raise ValueError(f"add_to_data_dir: image ids repeat in table {table!r}")
        keyed = [(image["image_id"], schema.encode_image(**image)) for image in images]
        tag = _tag(keyed)
        summary = write_record_set(data_dir, schema.image_table_prefix(table), keyed,
                                   num_shards, tag)
        replaced += meta.setdefault("images", {}).get(table, {}).get("shards", [])
        meta["images"][table] = summary
    tables = list(image_tables or ([table] if table else []))
    for name in tables:
        schema.image_table(meta, data_dir, name)  # the ids must refer to a table that exists
    by_split = {}
    for pair in pairs:
        by_split.setdefault((pair["attribute"], pair["split"]), []).append(pair)
    for (attribute, split), members in sorted(by_split.items()):
        if not tables:
            raise ValueError(f"add_to_data_dir: pairs of {attribute}/{split} need image_tables")
        keyed = [(schema.pair_sort_key(p), schema.encode_pair(**p)) for p in members]
        summary = write_record_set(data_dir, schema.pair_split_prefix(attribute, split), keyed,
                                   num_shards, _tag(keyed))
        summary.update(pairs=summary.pop("count"), image_tables=tables,
                       equal_pairs=sum(p["target"] == schema.EQUAL_TARGET for p in members))
        splits = meta.setdefault("splits", {}).setdefault(attribute, {})
        replaced += splits.get(split, {}).get("shards", [])
        splits[split] = summary
        if attribute not in meta.setdefault("attributes", []):
            meta["attributes"].append(attribute)
    meta.setdefault("history", []).append(dict(
        command=command, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        images={table: len(images)} if images else {},
        pairs={f"{a}/{s}": len(m) for (a, s), m in sorted(by_split.items())}))
    schema.write_metadata(data_dir, meta)
    in_use = {name for entry in meta.get("images", {}).values() for name in entry["shards"]}
    in_use |= {name for splits in meta.get("splits", {}).values() for entry in splits.values()
               for name in entry["shards"]}
    for name in set(replaced) - in_use:
        path = schema.join(data_dir, name)
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    return meta


def add_pair_subset(data_dir, attribute, split, new_split, count, seed=0, command=""):
    """Adds split `new_split`: `count` pairs of `split` drawn at random (seeded, nested: the
    first `count` of one permutation), same images (a smaller real label budget). An existing split of that name with the same count is kept.
    Returns its pair count."""
    meta = schema.read_metadata(data_dir)
    existing = meta.get("splits", {}).get(attribute, {}).get(new_split)
    if existing and existing["pairs"] == count:
        return count
    entry = schema.pair_split(meta, data_dir, attribute, split)
    if count > entry["pairs"]:
        raise schema.DataError(f"{schema.metadata_path(data_dir)}: {attribute}/{split} has "
                               f"{entry['pairs']} pairs, fewer than the {count} asked for")
    records = [schema.decode_record(r.numpy()) for r in
               read_records(schema.shard_paths(data_dir, entry, f"{attribute}/{split}"))]
    records.sort(key=lambda r: (r[schema.ID_A], r[schema.ID_B], r[schema.TARGET]))
    # One permutation per seed: a smaller budget's pairs are part of every larger one's.
    chosen = np.random.default_rng(seed).permutation(len(records))[:count]
    known = lambda x: None if x is None or x == schema.UNKNOWN else x
    pairs = [dict(id_a=r[schema.ID_A], id_b=r[schema.ID_B], attribute=attribute,
                  target=r[schema.TARGET], source=r["source"], split=new_split,
                  agreement=known(r[schema.AGREEMENT]), confidence=known(r[schema.CONFIDENCE]),
                  true_target=known(r[schema.TRUE_TARGET]))
             for r in (records[i] for i in sorted(chosen))]
    add_to_data_dir(data_dir, pairs=pairs, image_tables=entry["image_tables"], command=command)
    return count
