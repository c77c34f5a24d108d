"""DoFns and PTransforms shared by every relattr_tf Beam job.

A job produces two PCollections: pairs (dicts with the fields of `schema.encode_pair` except the
image bytes) and images ((image_id, encoded bytes)). `AttachImages` joins them, `EncodePairs`
serializes through the schema module, and `WritePairShards` writes one shard set per
(attribute, split) and returns the counts that `WriteMetadata` puts into metadata.json.
"""
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
