"""DoFns and PTransforms shared by every relattr_tf Beam job (data directory format version 2).

A job produces image dicts (`table`, `id`, `image` bytes, optional `strengths`, `box`, `source`)
and batches of pair dicts (the arguments of `schema.encode_pair`). `WriteDataDir` encodes both
through the schema module, writes one deterministic shard set per image table and per pair
split (`WriteRecordSets`) and then metadata.json (`WriteMetadata`).

Records travel as batches (lists) of keyed records `(set prefix, sort key, serialized bytes)`:
a million pairs are then a few hundred Beam elements, not a million. Shard files do not depend
on the runner, the batching or the worker count: the shard count of a set follows from its
total size, a record's shard from a hash of its sort key, and a shard's records are sorted, so
the same inputs give byte-identical files with the same names (as `writer.write_record_set`).
"""
import argparse
import io
import logging
import math
import os
import sys
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from relattr_tf.data import schema

NAMESPACE = "relattr"
REJECTED_FILE = "rejected.csv"
# encode_pair's arguments: other keys a job carries on its pair dicts are left out of records.
PAIR_FIELDS = ("id_a", "id_b", "attribute", "target", "source", "split", "agreement",
               "confidence", "true_target")


def counter(name):
    return Metrics.counter(NAMESPACE, name)


# --------------------------------------------------------------------------- flags and errors
class JobArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are a SystemExit with a one-line message (naming the flag)."""

    def error(self, message):
        raise SystemExit(f"{message} (see --help)")


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse `type=` that parses `kind` and checks low <= / < value <= / < high."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    wanted = f"{'an integer' if kind is int else 'a number'} {' and '.join(parts)}".strip()

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    parse.__name__ = wanted
    return parse


positive_int = _number(int, low=1)
non_negative_int = _number(int, low=0)
fraction = _number(float, low=0, high=1, low_open=True)  # (0, 1]
open_fraction = _number(float, low=0, high=1, low_open=True, high_open=True)  # (0, 1)
unit_interval = _number(float, low=0, high=1)  # [0, 1]


def add_common_args(parser):
    """Flags every job takes: --verbosity (and --help)."""
    parser.add_argument("--verbosity", type=non_negative_int, default=0,
                        help="0: one-line errors and warnings; 1: tracebacks and info logs")
    return parser


# The project's errors: reported as one line, `job: message`.
EXPECTED_ERRORS = (ValueError, OSError)  # MatError and DataError are ValueErrors


def _one_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def main(run, job, argv=None):
    """Runs `run(argv)` as a command: the project's errors (MatError, DataError, ValueError,
    OSError, SystemExit with a message) become one line `job: message` on stderr and exit code
    1; --verbosity=1 also prints the traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--verbosity", default="0")
    try:
        verbosity = int(peek.parse_known_args(argv)[0].verbosity)
    except ValueError:
        verbosity = 0  # the job's own parser reports the bad value
    logging.getLogger().setLevel(logging.INFO if verbosity >= 1 else logging.WARNING)
    if verbosity < 1:  # Beam logs a failing element's traceback itself: only with --verbosity
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    try:
        run(argv)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            raise  # --help, or an explicit exit status
        _fail(job, e.code, verbosity)
    except EXPECTED_ERRORS as e:
        message = _one_line(e)
        if type(e).__name__ not in ("MatError", "DataError"):  # those name the file already
            message = f"{type(e).__name__}: {message}"
        _fail(job, message, verbosity)


def _fail(job, message, verbosity):
    if verbosity >= 1:
        import traceback
        traceback.print_exc()
    message = _one_line(message)
    if not message.startswith(job.split(" ")[0]):
        message = f"{job}: {message}"
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


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
    """Image dict (table, id, image, strengths?, box?, source) -> a batch of one keyed record."""

    def __init__(self):
        self.written = counter("images_written")

    def process(self, image):
        record = schema.encode_image(image=image["image"], image_id=image["id"],
                                     source=image["source"], strengths=image.get("strengths"),
                                     box=image.get("box"))
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
        from relattr_tf.data import writer
        (prefix, index), groups = item
        records = sorted(r for group in groups for r in group)
        name = schema.shard_name(prefix, index, shard_counts[prefix])
        writer.write_shard(schema.join(self.output_dir, name), (r for _, r in records))
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
def _write_metadata(_, output_dir, base, tables, splits, set_summaries, equal_pairs):
    by_prefix = dict(set_summaries)
    listed = {schema.image_table_prefix(t) for t in tables} | {
        schema.pair_split_prefix(a, s) for a, s in splits}
    if set(by_prefix) - listed:  # shards no metadata entry would point at: a job's bug
        raise ValueError(f"{output_dir}: records for unlisted sets "
                         f"{', '.join(sorted(set(by_prefix) - listed))}")
    empty = {"count": 0, "bytes": 0, "shards": []}
    meta = dict(base)
    meta["images"] = {table: dict(by_prefix.get(schema.image_table_prefix(table), empty))
                      for table in tables}
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
        self.tables, self.splits = list(tables), dict(splits)

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

    tables: every image table to list; splits: {(attribute, split): [image tables]}.
    """

    def __init__(self, output_dir, base_meta, tables, splits, num_shards=0):
        super().__init__()
        self.output_dir, self.base_meta = output_dir, base_meta
        self.tables, self.splits, self.num_shards = list(tables), dict(splits), num_shards

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


# --------------------------------------------------------------------------- pairs and images
def _keep_present(item, side):
    image_id, groups = item
    present = any(True for _ in groups["image"])
    for pair in groups["pair"]:
        if present:
            yield pair
        else:
            counter("pairs_missing_image").inc()


class DropPairsMissingImages(beam.PTransform):
    """(pairs, image ids) -> the pairs whose two images are both present; the others are
    dropped and counted (`pairs_missing_image`). A join on ids: no image bytes move."""

    def expand(self, pcolls):
        pairs, image_ids = pcolls
        present = image_ids | "Present" >> beam.Map(lambda image_id: (image_id, True))
        for side in ("a", "b"):
            pairs = ({"pair": pairs | f"Key{side}" >> beam.Map(
                          lambda p, s=side: (p[f"id_{s}"], p)),
                      "image": present}
                     | f"Join{side}" >> beam.CoGroupByKey()
                     | f"Keep{side}" >> beam.FlatMap(_keep_present, side))
        return pairs


def counters_of(result):
    """{name: committed value} of the relattr counters, summed over the steps that share a
    name (absent counters read as 0: use .get(name, 0))."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts = {}
    for c in query["counters"]:
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + c.committed
    return counts


def print_summary(job, output_dir, result, started):
    counts = counters_of(result)
    line = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"{job}: wrote {output_dir} in {time.time() - started:.1f}s ({line})", flush=True)
    return counts


def command_line(module, argv):
    """The command that made an output, recorded in metadata.json."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join([f"python -m {module}"] + args)


# --------------------------------------------------------------------------- real data sets
class ReadImage(beam.DoFn):
    """(key, path) -> (key, encoded bytes); unreadable or missing images go to the `rejected`
    output as (path, reason) and are counted. With image_size, images are resized to a square
    and re-encoded as JPEG; otherwise the source bytes are kept. The key is passed through."""

    def __init__(self, image_size=0):
        self.image_size = image_size
        self.read = counter("images_read")
        self.rejected = counter("images_rejected")

    def process(self, item):
        from PIL import Image
        key, path = item
        try:
            with FileSystems.open(path, compression_type="uncompressed") as f:
                data = f.read()
            image = Image.open(io.BytesIO(data))
            image.load()  # forces the full decode: a truncated file fails here
            if self.image_size:
                image = image.convert("RGB").resize((self.image_size, self.image_size),
                                                    Image.BICUBIC)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=95)
                data = buffer.getvalue()
        except Exception as e:  # every failure becomes a counted, reported rejection
            self.rejected.inc()
            reason = f"{type(e).__name__}: {_one_line(e)}"
            yield beam.pvalue.TaggedOutput("rejected", (path, reason.strip()))
            return
        self.read.inc()
        yield key, data


class WriteRejected(beam.PTransform):
    """Writes <output_dir>/rejected.csv (image,reason), sorted; header only when none."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, rejected):
        def csv_line(item):
            path, reason = item
            return '"{}","{}"'.format(path.replace('"', '""'), reason.replace('"', '""'))
        return (rejected
                | "CsvLine" >> beam.Map(csv_line)
                | "All" >> beam.combiners.ToList()
                | "Sorted" >> beam.FlatMap(sorted)
                | "Write" >> beam.io.WriteToText(
                    schema.join(self.output_dir, "rejected"), file_name_suffix=".csv",
                    header="image,reason", num_shards=1, shard_name_template=""))


def file_sha256(path):
    import hashlib
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _image_dict(item, source):
    (table, image_id, strengths), data = item
    return dict(table=table, id=image_id, image=data, strengths=strengths, source=source)


def _count_rejected_row(row):
    counter("rows_rejected").inc()
    return row


PAIR_BATCH_SIZE = 10000


def run_conversion(job, output_dir, beam_args, *, images, base_meta, splits=None,
                   make_pairs=None, tables=None, source=None, image_size=0, num_shards=0,
                   max_rejected_fraction=0.01, rejected_rows=(), unit="images"):
    """The shared body of every converter.

    images: (table, image_id, path, strengths or None) of every image to store, once per table;
    splits: {(attribute, split): [image tables its ids refer to]}, every split to write;
    make_pairs(pipeline): the PCollection of pair dicts (schema.encode_pair's arguments);
    tables: every image table to list (default: those of images and splits);
    rejected_rows: (where, reason) of input rows rejected before reading any image;
    unit: what the rejected fraction counts, "images" or ("rows") images + rejected rows.
    Unreadable images are rejected (rejected.csv) and their pairs dropped (counted). Fails,
    with metadata.json removed, when more than max_rejected_fraction of the images (and rows)
    are rejected.
    """
    from apache_beam.options.pipeline_options import PipelineOptions
    started = time.time()
    output_dir = output_dir.rstrip("/")
    splits = dict(splits or {})
    source = source or base_meta["dataset"]
    if tables is None:
        tables = list(dict.fromkeys([t for t, *_ in images]
                                    + [t for ts in splits.values() for t in ts]))
    clear_output(output_dir)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        read = (p
                | "ImagePaths" >> beam.Create(sorted(
                    (((table, image_id, strengths), path)
                     for table, image_id, path, strengths in images),
                    key=lambda item: (item[0][0], item[0][1])))
                | "Spread" >> beam.Reshuffle()
                | "ReadImages" >> beam.ParDo(ReadImage(image_size)).with_outputs(
                    "rejected", main="images"))
        early = (p | "RejectedRows" >> beam.Create(list(rejected_rows))
                 | "CountRows" >> beam.Map(_count_rejected_row))
        _ = (read.rejected, early) | "AllRejected" >> beam.Flatten() | WriteRejected(output_dir)
        image_dicts = read.images | "ImageDicts" >> beam.Map(_image_dict, source)
        if make_pairs is not None:
            image_ids = read.images | "ImageIds" >> beam.Map(lambda item: item[0][1])
            pair_batches = ((make_pairs(p), image_ids)
                            | "DropMissing" >> DropPairsMissingImages()
                            | "BatchPairs" >> beam.BatchElements(
                                min_batch_size=1, max_batch_size=PAIR_BATCH_SIZE))
        else:
            pair_batches = p | "NoPairs" >> beam.Create([])
        _ = ((image_dicts, pair_batches)
             | "Write" >> WriteDataDir(output_dir, base_meta, tables, splits, num_shards))
    counts = print_summary(job, output_dir, p.result, started)
    rejected = counts.get("images_rejected", 0) + counts.get("rows_rejected", 0)
    total = len(images) + len(rejected_rows)
    if total and rejected / total > max_rejected_fraction:
        FileSystems.delete([schema.metadata_path(output_dir)])
        what = "images could not be read" if unit == "images" else f"{unit} were rejected"
        raise SystemExit(
            f"{job}: {rejected} of {total} {what} ({rejected / total:.1%}, more than "
            f"--max_rejected_fraction={max_rejected_fraction}); see "
            f"{schema.join(output_dir, REJECTED_FILE)}")
    return p.result


def add_conversion_args(parser, input_required=True):
    """Flags every converter takes (any other flag is a Beam pipeline option)."""
    parser.add_argument("--input_dir", required=input_required,
                        help="the data set as its archive unpacks")
    parser.add_argument("--output_dir", required=True, help="data directory to write")
    parser.add_argument("--image_size", type=non_negative_int, default=0,
                        help="resize to a square of this size and re-encode (0: keep the bytes)")
    parser.add_argument("--num_shards", type=non_negative_int, default=0,
                        help="shards per image table and pair split (0: one per ~128 MB)")
    parser.add_argument("--max_rejected_fraction", type=unit_interval, default=0.01,
                        help="fail when more than this fraction of the images is unreadable")
    return add_common_args(parser)


def safe_name(name):
    """An attribute name usable as a directory name."""
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())
