"""Writing a version-2 data directory from a Beam job: record encoding, deterministic shard sets
and metadata.json.

A job produces image dicts (`table`, `id`, `image` bytes, optional `strengths`, `box`, `labels`,
`source`) and batches of pair dicts (the arguments of `schema.encode_pair`). `WriteDataDir`
encodes both through the schema module (`EncodeImage`, `EncodePairBatch`), writes one
deterministic shard set per image table and per pair split (shards.WriteRecordSets) and then
metadata.json with the job's counts (`WriteMetadata`, the job's last step). `clear_output`
deletes what an earlier run wrote.

Records travel as batches (lists) of keyed records `(set prefix, sort key, serialized bytes)`:
a million pairs are then a few hundred Beam elements, not a million.
"""
import logging
import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.counters import CountElements, SumCounts, counter
from beam_jobs.shards import WriteRecordSets
from relattr_tf.data import schema

JOB_COUNTS = "job_counts"  # metadata.json's key for what the job counted
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


# --------------------------------------------------------------------------- metadata
def _table_entries(tables):
    """Image tables as {table: extra metadata keys}, from a list or such a dict."""
    return dict(tables) if isinstance(tables, dict) else {table: {} for table in tables}


def _write_metadata(group, output_dir, base, tables, splits):
    """Writes metadata.json from WriteMetadata's one group of tagged parts."""
    _, parts = group
    by_prefix, equal_pairs, counts = {}, {}, {}
    for tag, value in parts:
        if tag == "set":
            by_prefix[value[0]] = value[1]
        elif tag == "equal":
            equal_pairs[value[0]] = value[1]
        elif tag == "count":
            counts[value[0]] = counts.get(value[0], 0) + value[1]
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
    for unit, prefix in (("image", schema.IMAGES_DIR + "/"), ("pair", schema.PAIRS_DIR + "/")):
        stored = sum(v["count"] for k, v in by_prefix.items() if k.startswith(prefix))
        encoded = counts.get(f"{unit}s_written", stored)
        if stored != encoded:  # a runner that lost records: no metadata.json points at them
            raise ValueError(f"{output_dir}: {encoded} {unit} records were encoded but "
                             f"{stored} reached the shards; metadata.json was not written")
    meta[JOB_COUNTS] = dict(sorted(counts.items()))
    schema.write_metadata(output_dir, meta)
    return meta


def _tagged(tag):
    return lambda value: (tag, value)


class WriteMetadata(beam.PTransform):
    """(set summaries, equal pair counts, job counts, files) -> metadata.json, written once
    every shard and file is written. The four arrive as one grouped main input, not as side
    inputs, so the write is the job's last step on every runner (the DaskRunner runs only what
    its last step depends on) and nothing upstream is computed twice. files: names of other
    outputs (rejected.csv) the write must wait for. tables: the image tables; splits:
    {(attribute, split): [image tables its ids refer to]}. Every listed table and split
    appears, empty ones too; the counts go to metadata.json's `job_counts`."""

    def __init__(self, output_dir, base, tables, splits):
        super().__init__()
        self.output_dir, self.base = output_dir, base
        self.tables, self.splits = _table_entries(tables), dict(splits)

    def expand(self, pcolls):
        set_summaries, equal_pairs, counts, files = pcolls
        parts = [pcoll | f"Tag{tag}" >> beam.Map(_tagged(tag)) for tag, pcoll in
                 (("set", set_summaries), ("equal", equal_pairs), ("count", counts),
                  ("file", files))]
        parts.append(set_summaries.pipeline | "Start" >> beam.Create([("start", None)]))
        return (parts
                | "AllParts" >> beam.Flatten()
                | "OneKey" >> beam.Map(lambda part: (None, part))
                | "Gather" >> beam.GroupByKey()
                | "WriteMeta" >> beam.Map(_write_metadata, self.output_dir, self.base,
                                          self.tables, self.splits))


class WriteDataDir(beam.PTransform):
    """(image dicts, batches of pair dicts[, job counts, files]) -> image tables, pair splits
    and metadata.json, the job's last step.

    job counts: (name, n) the job counted (counters.CountElements), stored with
    images_written and pairs_written in metadata.json's `job_counts`; files: names of the
    job's other outputs, written before metadata.json. tables: every image table to list (or
    {table: more keys of its metadata entry, e.g. label_heads}); splits: {(attribute, split):
    [image tables]}.
    """

    def __init__(self, output_dir, base_meta, tables, splits, num_shards=0):
        super().__init__()
        self.output_dir, self.base_meta = output_dir, base_meta
        self.tables, self.splits = _table_entries(tables), dict(splits)
        self.num_shards = num_shards

    def expand(self, pcolls):
        images, pair_batches, *more = pcolls
        pipeline = images.pipeline
        counts = more[0] if more else pipeline | "NoCounts" >> beam.Create([])
        files = more[1] if len(more) > 1 else pipeline | "NoFiles" >> beam.Create([])
        prefixes = ([schema.image_table_prefix(t) for t in self.tables]
                    + [schema.pair_split_prefix(a, s) for a, s in self.splits])
        image_records = images | "EncodeImages" >> beam.ParDo(EncodeImage())
        pair_records = pair_batches | "EncodePairs" >> beam.ParDo(EncodePairBatch())
        summaries = ((image_records, pair_records)
                     | "AllRecords" >> beam.Flatten()
                     | "WriteSets" >> WriteRecordSets(self.output_dir, prefixes, self.num_shards))
        equal = pair_batches | "CountEqual" >> CountEqualPairs()
        written = (image_records | "CountImages" >> CountElements("images_written", len),
                   pair_records | "CountPairs" >> CountElements("pairs_written", len), counts)
        return ((summaries, equal, written | "JobCounts" >> SumCounts(), files)
                | "Metadata" >> WriteMetadata(self.output_dir, self.base_meta, self.tables,
                                              self.splits))
