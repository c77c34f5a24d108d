"""Writing a version-2 data directory from a Beam job: record encoding, deterministic shard sets
and metadata.json.

A job produces image dicts (`table`, `id`, `image` bytes, optional `strengths`, `box`, `labels`,
`source`)
and batches of pair dicts (the arguments of `schema.encode_pair`). `WriteDataDir` encodes both
through the schema module (`EncodeImage`, `EncodePairBatch`), writes one deterministic shard
set per image table and per pair split (`WriteRecordSets`) and then metadata.json
(`WriteMetadata`). `clear_output` deletes what an earlier run wrote.

Records travel as batches (lists) of keyed records `(set prefix, sort key, serialized bytes)`:
a million pairs are then a few hundred Beam elements, not a million. Shard files do not depend
on the runner, the batching or the worker count: the shard count of a set follows from its
total size, a record's shard from a hash of its sort key, and a shard's records are sorted, so
the same inputs give byte-identical files with the same names (as `writer.write_record_set`).
"""
import logging
import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.counters import counter
from relattr_tf.data import schema, writer

REJECTED_FILE = "rejected.csv"  # written by transforms.WriteRejected, deleted by clear_output
# encode_pair's arguments: other keys a job carries on its pair dicts are left out of records.
PAIR_FIELDS = ("id_a", "id_b", "attribute", "target", "source", "split", "agreement",
               "confidence", "true_target")


# --------------------------------------------------------------------------- output directory
def clear_output(output_dir):
    """Deletes what an earlier run wrote (images/, pairs/, metadata.json, rejected.csv, and
    version-1 shards `<dir>/*/*-of-*.tfrecord.gz`): a job replaces its data directory whole."""
    out = output_dir.rstrip("/")
    local = "://" not in out
    for folder in (schema.IMAGES_DIR, schema.PAIRS_DIR):
        path = schema.join(out, folder)
        if local and os.path.isdir(path):
            FileSystems.delete([path])  # a local folder is deleted with what it holds
    patterns = [f"{out}/{schema.IMAGES_DIR}/*", f"{out}/{schema.PAIRS_DIR}/*/*",
                f"{out}/*/*-of-*{schema.SHARD_SUFFIX}", schema.join(out, schema.METADATA_FILE),
                schema.join(out, schema.METADATA_FILE + ".tmp"), schema.join(out, REJECTED_FILE)]
    old = sorted({m.path for r in FileSystems.match(patterns) for m in r.metadata_list})
    if old:
        logging.info("removing %d files of an earlier run under %s", len(old), out)
        FileSystems.delete(old)
    for folder in sorted({os.path.dirname(path) for path in old}):
        if local and os.path.isdir(folder) and not os.listdir(folder):
            FileSystems.delete([folder])  # a version-1 <attribute>/ folder, now empty


# --------------------------------------------------------------------------- encoding
class EncodeImage(beam.DoFn):
    """Image dict (table, id, image, strengths?, box?, labels?, source) -> a batch of one keyed
    record."""

    def __init__(self):
        self.written = counter("images_written")

    def process(self, image):
        record = schema.encode_image(image=image["image"], image_id=image["id"],
                                     source=image["source"], strengths=image.get("strengths"),
                                     box=image.get("box"), labels=image.get("labels"))
        self.written.inc()
        yield [(schema.image_table_prefix(image["table"]), image["id"], record)]


class PairEncoder:
    """schema.encode_pair for many pairs, about 5x faster (8 vs 40 us a pair): the Example that
    encode_pair made for the first pair is reused and only its values are overwritten, so the
    bytes are the same. Checked on that first pair; any mismatch (a schema that grew a field)
    falls back to encode_pair for every pair."""

    def __init__(self):
        self.example = None
        self.fast = True

    def _start(self, fields):
        from tensorflow.core.example import example_pb2
        record = schema.encode_pair(**fields)
        self.example = example_pb2.Example.FromString(record)
        features = self.example.features.feature
        self.kinds = {}
        for name in PAIR_FIELDS:
            kind = features[name].WhichOneof("kind") if name in features else None
            if kind not in ("bytes_list", "float_list") or \
                    len(getattr(features[name], kind).value) != 1:
                self.fast = False
                return record
            self.kinds[name] = kind
        self.fast = self._fast(fields) == record
        return record

    def _fast(self, fields):
        features = self.example.features.feature
        for name, kind in self.kinds.items():
            value = fields.get(name)
            if kind == "bytes_list":
                features[name].bytes_list.value[0] = str(value).encode("utf-8")
            else:
                features[name].float_list.value[0] = \
                    schema.UNKNOWN if value is None else float(value)
        return self.example.SerializeToString(deterministic=True)

    def encode(self, fields):
        if self.example is None:
            return self._start(fields)
        if not self.fast or float(fields["target"]) not in (0.0, 0.5, 1.0):
            return schema.encode_pair(**fields)  # also raises the schema's error on a bad target
        return self._fast(fields)


class EncodePairBatch(beam.DoFn):
    """A batch of pair dicts -> the batch of keyed records (sort key: schema.pair_sort_key)."""

    def __init__(self):
        self.written = counter("pairs_written")

    def setup(self):
        self.encoder = PairEncoder()

    def process(self, pairs):
        records = []
        for pair in pairs:
            fields = {k: pair[k] for k in PAIR_FIELDS if k in pair}
            records.append((schema.pair_split_prefix(pair["attribute"], pair["split"]),
                            schema.pair_sort_key(pair), self.encoder.encode(fields)))
        self.written.inc(len(records))
        if records:
            yield records


def _equal_pairs(pairs):
    counts = {}
    for pair in pairs:
        prefix = schema.pair_split_prefix(pair["attribute"], pair["split"])
        counts[prefix] = counts.get(prefix, 0) + int(pair["target"] == schema.EQUAL_TARGET)
    return counts.items()


class CountEqualPairs(beam.PTransform):
    """Batches of pair dicts -> (split prefix, number of equal pairs)."""

    def expand(self, pair_batches):
        return (pair_batches
                | "PerBatch" >> beam.FlatMap(_equal_pairs)
                | "Sum" >> beam.CombinePerKey(sum))


# --------------------------------------------------------------------------- sharding
def _sum_pairs(values):
    count = size = 0
    for c, s in values:
        count, size = count + c, size + s
    return count, size


def _batch_sizes(batch):
    sizes = {}
    for prefix, _, record in batch:
        count, size = sizes.get(prefix, (0, 0))
        sizes[prefix] = (count + 1, size + len(record))
    return sizes.items()


class AssignShards(beam.DoFn):
    """A batch of keyed records -> ((prefix, shard index), [(sort key, record)]) per shard."""

    def process(self, batch, shard_counts):
        shards = {}
        for prefix, key, record in batch:
            index = schema.shard_of(key, shard_counts[prefix])
            shards.setdefault((prefix, index), []).append((key, record))
        yield from shards.items()


class WriteShard(beam.DoFn):
    """((prefix, index), [record lists]) -> writes the shard, records sorted by (key, bytes);
    outputs (prefix, shard name relative to the data directory)."""

    def __init__(self, output_dir):
        self.output_dir = output_dir

    def process(self, item, shard_counts):
        (prefix, index), groups = item
        name = schema.shard_name(prefix, index, shard_counts[prefix])
        writer.write_sorted_shard(schema.join(self.output_dir, name),
                                  (r for group in groups for r in group))
        yield prefix, name


def _set_summary(item):
    prefix, groups = item
    count, size = _sum_pairs(groups["sizes"])
    shards = sorted(name for names in groups["shards"] for name in names)
    return prefix, {"count": count, "bytes": size, "shards": shards}


class WriteRecordSets(beam.PTransform):
    """Batches of keyed records (prefix, sort key, bytes) -> one shard set per prefix.

    The shard count of a set is schema.shard_count(its bytes, num_shards) (0: by size), a
    record's shard schema.shard_of(its key); every shard 0..n-1 is written, empty ones too. A
    prefix in `prefixes` without records is reported with no shards. Returns a PCollection of
    (prefix, {"count": n, "bytes": b, "shards": [names relative to output_dir]}).
    """

    def __init__(self, output_dir, prefixes, num_shards=0):
        super().__init__()
        self.output_dir, self.prefixes, self.num_shards = output_dir, list(prefixes), num_shards

    def expand(self, batches):
        num_shards = self.num_shards
        listed = batches.pipeline | "Listed" >> beam.Create([(p, (0, 0)) for p in self.prefixes])
        sizes = ((batches | "Sizes" >> beam.FlatMap(_batch_sizes), listed)
                 | "AllSizes" >> beam.Flatten()
                 | "SumSizes" >> beam.CombinePerKey(_sum_pairs))
        counts = sizes | "ShardCount" >> beam.Map(
            lambda kv: (kv[0], schema.shard_count(kv[1][1], num_shards) if kv[1][0] else 0))
        shard_counts = beam.pvalue.AsDict(counts)
        # Every shard index gets an (empty) entry, so shards that no key hashes to are written.
        slots = counts | "Slots" >> beam.FlatMap(
            lambda kv: [((kv[0], index), []) for index in range(kv[1])])
        names = ((batches | "Assign" >> beam.ParDo(AssignShards(), shard_counts), slots)
                 | "WithSlots" >> beam.Flatten()
                 | "ByShard" >> beam.GroupByKey()
                 | "Write" >> beam.ParDo(WriteShard(self.output_dir), shard_counts)
                 | "BySet" >> beam.GroupByKey())
        return ({"sizes": sizes, "shards": names}
                | "Join" >> beam.CoGroupByKey()
                | "Summary" >> beam.Map(_set_summary))


# --------------------------------------------------------------------------- metadata
def _table_entries(tables):
    """Image tables as {table: extra metadata keys}, from a list or such a dict."""
    return dict(tables) if isinstance(tables, dict) else {table: {} for table in tables}


def _write_metadata(_, output_dir, base, tables, splits, set_summaries, equal_pairs):
    by_prefix = dict(set_summaries)
    listed = {schema.image_table_prefix(t) for t in tables} | {
        schema.pair_split_prefix(a, s) for a, s in splits}
    if set(by_prefix) - listed:  # shards no metadata entry would point at: a job's bug
        raise ValueError(f"{output_dir}: records for unlisted sets "
                         f"{', '.join(sorted(set(by_prefix) - listed))}")
    empty = {"count": 0, "bytes": 0, "shards": []}
    meta = dict(base)
    meta["images"] = {table: dict(by_prefix.get(schema.image_table_prefix(table), empty),
                                  **extra) for table, extra in tables.items()}
    meta["splits"] = {}
    for (attribute, split), image_tables in splits.items():
        prefix = schema.pair_split_prefix(attribute, split)
        summary = by_prefix.get(prefix, empty)
        meta["splits"].setdefault(attribute, {})[split] = {
            "pairs": summary["count"], "equal_pairs": equal_pairs.get(prefix, 0),
            "bytes": summary["bytes"], "shards": summary["shards"],
            "image_tables": list(image_tables)}
    schema.write_metadata(output_dir, meta)
    return meta


class WriteMetadata(beam.PTransform):
    """(set summaries, equal pair counts) -> metadata.json, written once every shard is
    written (both are side inputs). tables: the image tables; splits: {(attribute, split):
    [image tables its ids refer to]}. Every listed table and split appears, empty ones too."""

    def __init__(self, output_dir, base, tables, splits):
        super().__init__()
        self.output_dir, self.base = output_dir, base
        self.tables, self.splits = _table_entries(tables), dict(splits)

    def expand(self, pcolls):
        set_summaries, equal_pairs = pcolls
        return (set_summaries.pipeline
                | "Once" >> beam.Create([None])
                | "WriteMeta" >> beam.Map(_write_metadata, self.output_dir, self.base,
                                          self.tables, self.splits,
                                          beam.pvalue.AsList(set_summaries),
                                          beam.pvalue.AsDict(equal_pairs)))


class WriteDataDir(beam.PTransform):
    """(image dicts, batches of pair dicts) -> image tables, pair splits and metadata.json.

    tables: every image table to list (or {table: more keys of its metadata entry, e.g.
    label_heads}); splits: {(attribute, split): [image tables]}.
    """

    def __init__(self, output_dir, base_meta, tables, splits, num_shards=0):
        super().__init__()
        self.output_dir, self.base_meta = output_dir, base_meta
        self.tables, self.splits = _table_entries(tables), dict(splits)
        self.num_shards = num_shards

    def expand(self, pcolls):
        images, pair_batches = pcolls
        prefixes = ([schema.image_table_prefix(t) for t in self.tables]
                    + [schema.pair_split_prefix(a, s) for a, s in self.splits])
        image_records = images | "EncodeImages" >> beam.ParDo(EncodeImage())
        pair_records = pair_batches | "EncodePairs" >> beam.ParDo(EncodePairBatch())
        summaries = ((image_records, pair_records)
                     | "AllRecords" >> beam.Flatten()
                     | "WriteSets" >> WriteRecordSets(self.output_dir, prefixes, self.num_shards))
        equal = pair_batches | "CountEqual" >> CountEqualPairs()
        return ((summaries, equal)
                | "Metadata" >> WriteMetadata(self.output_dir, self.base_meta, self.tables,
                                              self.splits))
