"""What the relattr Beam jobs share besides their command line (cli.py) and the writing of the
data directory (records.py): dropping pairs whose images are missing, the end-of-run summary,
and for the converters of real data sets reading images, rejected.csv and `run_conversion`,
the body every converter runs.
"""
import hashlib
import io
import re
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from beam_jobs.cli import one_line
from beam_jobs.counters import counter, counters_of
from beam_jobs.records import REJECTED_FILE, WriteDataDir, clear_output
from relattr_tf.data import schema



# --------------------------------------------------------------------------- every job
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


def print_summary(job, output_dir, result, started):
    counts = counters_of(result)
    line = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"{job}: wrote {output_dir} in {time.time() - started:.1f}s ({line})", flush=True)
    return counts


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
            reason = f"{type(e).__name__}: {one_line(e)}"
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


def safe_name(name):
    """An attribute name usable as a directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())
