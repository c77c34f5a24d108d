"""DoFns and PTransforms shared by every relattr_tf Beam job.

A job produces two PCollections: pairs (dicts with the fields of `schema.encode_pair` except the
image bytes) and images ((image_id, encoded bytes)). `AttachImages` joins them, `EncodePairs`
serializes through the schema module, and `WritePairShards` writes one shard set per
(attribute, split) and returns the counts that `WriteMetadata` puts into metadata.json.
"""
import io
import logging
import os
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from relattr_tf.data import schema

NAMESPACE = "relattr"


def counter(name):
    return Metrics.counter(NAMESPACE, name)


def clear_output(output_dir):
    """Deletes shards, metadata.json and rejected.csv of an earlier run, so a rerun never mixes."""
    patterns = [f"{output_dir.rstrip('/')}/*/*-of-*{schema.SHARD_SUFFIX}",
                schema.metadata_path(output_dir), os.path.join(output_dir, "rejected.csv")]
    old = [m.path for r in FileSystems.match(patterns) for m in r.metadata_list]
    if old:
        logging.info("removing %d files of an earlier run under %s", len(old), output_dir)
        FileSystems.delete(old)


def _attach(item, field):
    image_id, groups = item
    images = list(groups["image"])
    for pair in groups["pair"]:
        if not images:
            counter("pairs_missing_image").inc()
            continue
        yield dict(pair, **{field: images[0]})


class AttachImages(beam.PTransform):
    """(pairs, images) -> pairs with image_a / image_b bytes; pairs whose image is missing are
    dropped and counted (`pairs_missing_image`)."""

    def expand(self, pcolls):
        pairs, images = pcolls
        for side in ("a", "b"):
            pairs = ({"pair": pairs | f"Key{side}" >> beam.Map(lambda p, s=side: (p[f"id_{s}"], p)),
                      "image": images}
                     | f"Join{side}" >> beam.CoGroupByKey()
                     | f"Attach{side}" >> beam.FlatMap(_attach, f"image_{side}"))
        return pairs


class EncodePairs(beam.PTransform):
    """Pair dicts -> ((attribute, split), serialized Example, target)."""

    def expand(self, pairs):
        def encode(pair):
            counter("pairs_written").inc()
            return (pair["attribute"], pair["split"]), schema.encode_pair(**pair), pair["target"]
        return pairs | beam.Map(encode)


class WritePairShards(beam.PTransform):
    """Writes one gzip TFRecord shard set per (attribute, split) key.

    Returns a PCollection of (key, {"pairs": n, "equal_pairs": m, "shards": [file names]}).
    """

    def __init__(self, output_dir, keys, num_shards):
        super().__init__()
        self.output_dir, self.keys, self.num_shards = output_dir, list(keys), num_shards

    def expand(self, encoded):
        index = {key: i for i, key in enumerate(self.keys)}
        parts = encoded | "ByKey" >> beam.Partition(lambda r, n: index[r[0]], len(self.keys))
        files = []
        for key, part in zip(self.keys, parts):
            name = "_".join(key)
            files.append(
                part
                | f"Bytes_{name}" >> beam.Map(lambda r: r[1])
                | f"Write_{name}" >> beam.io.WriteToTFRecord(
                    schema.shard_prefix(self.output_dir, *key),
                    file_name_suffix=schema.SHARD_SUFFIX, num_shards=self.num_shards)
                | f"Name_{name}" >> beam.Map(lambda path, k=key: (k, os.path.basename(path))))
        shard_names = files | "AllShards" >> beam.Flatten() | "GroupShards" >> beam.GroupByKey()
        counts = (encoded
                  | "CountKey" >> beam.Map(lambda r: (r[0], (1, int(r[2] == schema.EQUAL_TARGET))))
                  | "SumKey" >> beam.CombinePerKey(lambda vs: tuple(map(sum, zip(*vs))) or (0, 0)))
        return ({"counts": counts, "shards": shard_names}
                | "JoinCounts" >> beam.CoGroupByKey()
                | "Summary" >> beam.Map(_split_summary))


def _split_summary(item):
    key, groups = item
    counts = list(groups["counts"]) or [(0, 0)]
    shards = sorted(name for names in groups["shards"] for name in names)
    return key, {"pairs": counts[0][0], "equal_pairs": counts[0][1], "shards": shards}


def _write_metadata(_, output_dir, base, split_summaries, image_counts):
    meta = dict(base)
    splits = {}
    for (attribute, split), summary in split_summaries:
        splits.setdefault(attribute, {})[split] = summary
    meta["splits"] = splits
    meta["images"] = dict(image_counts)
    schema.write_metadata(output_dir, meta)
    return meta


class WriteMetadata(beam.PTransform):
    """Writes metadata.json once every shard is written (the summaries are its side inputs)."""

    def __init__(self, output_dir, base):
        super().__init__()
        self.output_dir, self.base = output_dir, base

    def expand(self, pcolls):
        split_summaries, image_counts = pcolls
        return (split_summaries.pipeline
                | "Once" >> beam.Create([None])
                | "WriteMeta" >> beam.Map(_write_metadata, self.output_dir, self.base,
                                          beam.pvalue.AsList(split_summaries),
                                          beam.pvalue.AsList(image_counts)))


def counters_of(result):
    """{name: committed value} of the relattr counters (absent counters read as 0)."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    return {c.key.metric.name: c.committed for c in query["counters"]}


def print_summary(job, output_dir, result, started):
    counts = counters_of(result)
    line = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"{job}: wrote {output_dir} in {time.time() - started:.1f}s ({line})", flush=True)
    return counts


def command_line(module, argv):
    """The command that made an output, recorded in metadata.json."""
    import sys
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join([f"python -m {module}"] + args)


# --------------------------------------------------------------------------- real data sets
class ReadImage(beam.DoFn):
    """(image_id, path) -> (image_id, encoded bytes); unreadable or missing images go to the
    `rejected` output as (path, reason) and are counted. With image_size, images are resized
    to a square and re-encoded as JPEG; otherwise the source bytes are kept."""

    def __init__(self, image_size=0):
        self.image_size = image_size
        self.read = counter("images_read")
        self.rejected = counter("images_rejected")

    def process(self, item):
        from PIL import Image
        image_id, path = item
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
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            yield beam.pvalue.TaggedOutput("rejected", (path, reason.strip()))
            return
        self.read.inc()
        yield image_id, data


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
                    os.path.join(self.output_dir, "rejected"), file_name_suffix=".csv",
                    header="image,reason", num_shards=1, shard_name_template=""))


def file_sha256(path):
    import hashlib
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_conversion(job, output_dir, beam_args, *, image_paths, make_pairs, keys, base_meta,
                   image_size=0, num_shards=2, max_rejected_fraction=0.01):
    """The shared body of every converter.

    image_paths: {image_id: path} of the images the pairs use; make_pairs(pipeline) returns the
    PCollection of pair dicts (schema fields without image bytes); keys: every
    (attribute, split) to write. Fails, with metadata.json removed, when more than
    max_rejected_fraction of the images cannot be read.
    """
    from apache_beam.options.pipeline_options import PipelineOptions
    started = time.time()
    output_dir = output_dir.rstrip("/")
    clear_output(output_dir)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        read = (p
                | "ImagePaths" >> beam.Create(sorted(image_paths.items()))
                | "Spread" >> beam.Reshuffle()
                | "ReadImages" >> beam.ParDo(ReadImage(image_size)).with_outputs(
                    "rejected", main="images"))
        _ = read.rejected | "Rejected" >> WriteRejected(output_dir)
        summaries = ((make_pairs(p), read.images)
                     | "AttachImages" >> AttachImages()
                     | "Encode" >> EncodePairs()
                     | "WritePairs" >> WritePairShards(output_dir, keys, num_shards))
        image_counts = (read.images
                        | "Readable" >> beam.Map(lambda kv: "readable")
                        | "CountImages" >> beam.combiners.Count.PerElement())
        _ = (summaries, image_counts) | "Metadata" >> WriteMetadata(output_dir, base_meta)
    counts = print_summary(job, output_dir, p.result, started)
    rejected, total = counts.get("images_rejected", 0), len(image_paths)
    if total and rejected / total > max_rejected_fraction:
        FileSystems.delete([schema.metadata_path(output_dir)])
        raise SystemExit(
            f"{job}: {rejected} of {total} images could not be read ({rejected / total:.1%}, "
            f"more than --max_rejected_fraction={max_rejected_fraction}); see "
            f"{os.path.join(output_dir, 'rejected.csv')}")
    return p.result


def add_conversion_args(parser):
    """Flags every converter takes (any other flag is a Beam pipeline option)."""
    parser.add_argument("--input_dir", required=True, help="the data set as its archive unpacks")
    parser.add_argument("--output_dir", required=True, help="data directory to write")
    parser.add_argument("--image_size", type=int, default=0,
                        help="resize to a square of this size and re-encode (0: keep the bytes)")
    parser.add_argument("--num_shards", type=int, default=2)
    parser.add_argument("--max_rejected_fraction", type=float, default=0.01,
                        help="fail when more than this fraction of the images is unreadable")
    return parser


def safe_name(name):
    """An attribute name usable as a directory name."""
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())
