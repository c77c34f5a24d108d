"""What the relattr Beam jobs share besides their command line (cli.py) and the writing of the
data directory (records.py): dropping pairs whose images are missing, the end-of-run summary,
and for the converters of real data sets reading images, rejected.csv and `run_conversion`,
the body every converter runs.
"""
import hashlib
import io
import re
import time
import zlib

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from beam_jobs.cli import one_line
from beam_jobs.counters import CountElements, SumCounts, counter
from beam_jobs.records import JOB_COUNTS, REJECTED_FILE, WriteDataDir, clear_output
from beam_jobs.runners import job_pipeline
from relattr_tf.data import schema



# --------------------------------------------------------------------------- every job
KEPT, DROPPED = "kept", "dropped"


def routed(tagged, tag, label):
    """The values of the (tag, value) elements with this tag. The jobs route outputs this way
    rather than through a multi-output ParDo, which the DaskRunner does not separate."""
    return tagged | label >> beam.FlatMap(lambda item: [item[1]] if item[0] == tag else [])


def _keep_present(item):
    image_id, groups = item
    present = any(True for _ in groups["image"])
    for pair in groups["pair"]:
        if not present:
            counter("pairs_missing_image").inc()
        yield (KEPT if present else DROPPED), pair


class DropPairsMissingImages(beam.PTransform):
    """(pairs, image ids) -> {"kept": the pairs whose two images are both present, "count":
    (pairs_missing_image, how many were dropped, once per pair)}. A join on ids: no image
    bytes move."""

    def expand(self, pcolls):
        pairs, image_ids = pcolls
        present = image_ids | "Present" >> beam.Map(lambda image_id: (image_id, True))
        dropped = []
        for side in ("a", "b"):
            tagged = ({"pair": pairs | f"Key{side}" >> beam.Map(
                           lambda p, s=side: (p[f"id_{s}"], p)),
                       "image": present}
                      | f"Join{side}" >> beam.CoGroupByKey()
                      | f"Keep{side}" >> beam.FlatMap(_keep_present))
            pairs = routed(tagged, KEPT, f"Kept{side}")
            dropped.append(routed(tagged, DROPPED, f"Dropped{side}"))
        count = (tuple(dropped) | "AllDropped" >> beam.Flatten()
                 | "CountDropped" >> CountElements("pairs_missing_image"))
        return {"kept": pairs, "count": count}


def job_counts(output_dir):
    """What the job counted, as its last step stored it in metadata.json (any runner)."""
    return dict(schema.read_metadata(output_dir).get(JOB_COUNTS, {}))


def print_summary(job, output_dir, started):
    """Prints `job: wrote DIR in Ns (name=n, ...)` from metadata.json's counts; returns them."""
    counts = job_counts(output_dir)
    line = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"{job}: wrote {output_dir} in {time.time() - started:.1f}s ({line})", flush=True)
    return counts


# --------------------------------------------------------------------------- real data sets
READ, REJECTED = "read", "rejected"


class ReadImage(beam.DoFn):
    """(key, path) -> ("read", (key, encoded bytes)), or ("rejected", (path, reason)) for an
    unreadable or missing image (route them with `routed`). With image_size, images are
    resized to a square and re-encoded as JPEG; otherwise the source bytes are kept. The key
    is passed through."""

    def __init__(self, image_size=0):
        self.image_size = image_size
        self.read = counter("images_read")
        self.rejected = counter("images_rejected")

    def process(self, item):
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
            # PIL names the in-memory file by address: left out, so reruns list the same
            reason = re.sub(r" ?<[^<>]* at 0x[0-9a-f]+>", "", f"{type(e).__name__}: {one_line(e)}")
            yield REJECTED, (path, reason.strip())
            return
        self.read.inc()
        yield READ, (key, data)


def _csv_line(item):
    path, reason = item
    return '"{}","{}"'.format(path.replace('"', '""'), reason.replace('"', '""'))


def _write_rejected(group, path):
    _, lines = group
    with FileSystems.create(path) as f:
        f.write("\n".join(["image,reason"] + sorted(filter(None, lines)) + [""]).encode("utf-8"))
    return path


class WriteRejected(beam.PTransform):
    """Writes <output_dir>/rejected.csv (image,reason), sorted; header only when none.
    Returns the written file's path. One group, not WriteToText: its side inputs would make
    the DaskRunner read every image again."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, rejected):
        start = rejected.pipeline | "Start" >> beam.Create([(None, "")])
        return ((rejected | "CsvLine" >> beam.Map(lambda item: (None, _csv_line(item))), start)
                | "Lines" >> beam.Flatten()
                | "All" >> beam.GroupByKey()
                | "Write" >> beam.Map(_write_rejected,
                                      schema.join(self.output_dir, REJECTED_FILE)))


def file_sha256(path):
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _image_dict(item, source):
    (table, image_id, strengths), data = item
    return dict(table=table, id=image_id, image=data, strengths=strengths, source=source)


PAIR_BATCHES = 64  # groups the kept pairs travel in to the writer


def _pair_bucket(pair):
    return zlib.crc32(f"{pair['attribute']}|{pair['split']}|{pair['id_a']}|{pair['id_b']}"
                      .encode("utf-8")) % PAIR_BATCHES, pair


class BatchPairs(beam.PTransform):
    """Pair dicts -> lists of them, PAIR_BATCHES groups by a hash of each pair. A group, not
    beam.BatchElements: the DaskRunner drops what a DoFn emits from finish_bundle, where
    BatchElements emits its last batch."""

    def expand(self, pairs):
        return (pairs
                | "Bucket" >> beam.Map(_pair_bucket)
                | "Group" >> beam.GroupByKey()
                | "Lists" >> beam.Map(lambda kv: list(kv[1])))


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
    started = time.time()
    output_dir = output_dir.rstrip("/")
    splits = dict(splits or {})
    source = source or base_meta["dataset"]
    if tables is None:
        tables = list(dict.fromkeys([t for t, *_ in images]
                                    + [t for ts in splits.values() for t in ts]))
    clear_output(output_dir)
    with job_pipeline(beam_args) as p:
        read = (p
                | "ImagePaths" >> beam.Create(sorted(
                    (((table, image_id, strengths), path)
                     for table, image_id, path, strengths in images),
                    key=lambda item: (item[0][0], item[0][1])))
                | "Spread" >> beam.Reshuffle()
                | "ReadImages" >> beam.ParDo(ReadImage(image_size)))
        read_images = routed(read, READ, "ReadOnes")
        rejected = routed(read, REJECTED, "Rejected")
        early = p | "RejectedRows" >> beam.Create(list(rejected_rows))
        rejected_file = ((rejected, early) | "AllRejected" >> beam.Flatten()
                         | WriteRejected(output_dir))
        counts = [read_images | "CountRead" >> CountElements("images_read"),
                  rejected | "CountRejected" >> CountElements("images_rejected"),
                  early | "CountRows" >> CountElements("rows_rejected")]
        image_dicts = read_images | "ImageDicts" >> beam.Map(_image_dict, source)
        if make_pairs is not None:
            image_ids = read_images | "ImageIds" >> beam.Map(lambda item: item[0][1])
            present = (make_pairs(p), image_ids) | "DropMissing" >> DropPairsMissingImages()
            counts.append(present["count"])
            pair_batches = present["kept"] | "BatchPairs" >> BatchPairs()
        else:
            pair_batches = p | "NoPairs" >> beam.Create([])
        job_counts = tuple(counts) | "Counts" >> SumCounts()
        _ = ((image_dicts, pair_batches, job_counts, rejected_file)
             | "Write" >> WriteDataDir(output_dir, base_meta, tables, splits, num_shards))
    counts = print_summary(job, output_dir, started)
    rejected = counts.get("images_rejected", 0) + counts.get("rows_rejected", 0)
    total = len(images) + len(rejected_rows)
    if total and rejected / total > max_rejected_fraction:
        FileSystems.delete([schema.metadata_path(output_dir)])
        what = "images could not be read" if unit == "images" else f"{unit} were rejected"
        raise SystemExit(
            f"{job}: {rejected} of {total} {what} ({rejected / total:.1%}, more than "
            f"--max_rejected_fraction={max_rejected_fraction}); see "
            f"{schema.join(output_dir, REJECTED_FILE)}")
    return counts


def safe_name(name):
    """An attribute name usable as a directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())
