"""Deterministic shard sets from a Beam job: `WriteRecordSets` turns batches of keyed records
(set prefix, sort key, serialized bytes) into one shard set per prefix. The shard count of a set
follows from its total size, a record's shard from a hash of its key, and a shard's records are
sorted, so the same records give byte-identical files with the same names whatever the runner,
the batching or the worker count (as `writer.write_record_set`).
"""
import zlib

import apache_beam as beam

from relattr_tf.data import schema, writer


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


JOIN_BUCKETS = 64  # groups per set in which records meet their set's shard count


def _by_bucket(batch):
    """A batch of keyed records -> ((prefix, join bucket), [(sort key, record)]) per bucket."""
    buckets = {}
    for prefix, key, record in batch:
        bucket = zlib.adler32(key.encode("utf-8")) % JOIN_BUCKETS
        buckets.setdefault((prefix, bucket), []).append((key, record))
    return buckets.items()


def _count_per_bucket(kv):
    prefix, count = kv
    return [((prefix, bucket), count) for bucket in range(JOIN_BUCKETS)] if count else []


def _assign_shards(item):
    """((prefix, bucket), {"records": [lists], "count": [shard count]}) -> ((prefix, index,
    shard count), [(sort key, record)]) per shard its records go to."""
    (prefix, _), groups = item
    shards = {}
    for records in groups["records"]:
        count = groups["count"][0]  # one per bucket of a set with records
        for key, record in records:
            shards.setdefault(schema.shard_of(key, count), []).append((key, record))
    return [((prefix, index, count), members) for index, members in shards.items()]


class WriteShard(beam.DoFn):
    """((prefix, index, count), [record lists]) -> writes the shard, records sorted by (key,
    bytes); outputs (prefix, shard name relative to the data directory)."""

    def __init__(self, output_dir):
        self.output_dir = output_dir

    def process(self, item):
        (prefix, index, count), groups = item
        name = schema.shard_name(prefix, index, count)
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

    Records meet their set's shard count in a join (JOIN_BUCKETS groups a set), not through a
    side input: the DaskRunner would recompute a side input's whole lineage, rendering
    included, for every partition that reads it.
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
        # Every shard index gets an (empty) entry, so shards that no key hashes to are written.
        slots = counts | "Slots" >> beam.FlatMap(
            lambda kv: [((kv[0], index, kv[1]), []) for index in range(kv[1])])
        assigned = ({"records": batches | "Buckets" >> beam.FlatMap(_by_bucket),
                     "count": counts | "PerBucket" >> beam.FlatMap(_count_per_bucket)}
                    | "WithCount" >> beam.CoGroupByKey()
                    | "Assign" >> beam.FlatMap(_assign_shards))
        names = ((assigned, slots)
                 | "WithSlots" >> beam.Flatten()
                 | "ByShard" >> beam.GroupByKey()
                 | "Write" >> beam.ParDo(WriteShard(self.output_dir))
                 | "BySet" >> beam.GroupByKey())
        return ({"sizes": sizes, "shards": names}
                | "Join" >> beam.CoGroupByKey()
                | "Summary" >> beam.Map(_set_summary))
