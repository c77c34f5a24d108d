"""Generates the embedded relative-attribute benchmark as pair shards (the default data set).

    python -m beam_jobs.make_synthetic --output_dir=data/synthetic
    python -m beam_jobs.make_synthetic --output_dir=DIR --num_images=20000 --image_size=128 \
        --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2

Images are rendered from latent strengths, measured on their pixels (the ground truth), paired
(coarse: random; fine: close strengths) and labelled by a simulated crowd of 5. Splits of images
are disjoint: train and test carry pairs, generator carries single images with strength vectors.
Any other flag is a Beam pipeline option (--runner, --direct_num_workers, --setup_file, ...).
"""
import argparse
import io
import logging
import time

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import transforms
from relattr_tf.data import schema
from relattr_tf.data.synthetic import attributes, crowd, pairs, render
from relattr_tf.data.synthetic.measure import measure

SOURCE = "synthetic"
IMAGE_SPLITS = ("train", "test", "generator")


def pair_splits(image_split):
    """The pair sets made from one image split: coarse under its name, fine with `_fine`."""
    return {image_split: "coarse", f"{image_split}_fine": "fine"}


def assign_splits(num_images, fractions, seed):
    """Seeded, disjoint split of image indices: list of (index, split)."""
    order = np.random.default_rng([seed, 1]).permutation(num_images)
    bounds = np.cumsum(np.asarray(fractions) / np.sum(fractions) * num_images).round().astype(int)
    split_of = np.empty(num_images, dtype=object)
    start = 0
    for split, stop in zip(IMAGE_SPLITS, bounds):
        split_of[order[start:stop]] = split
        start = stop
    return [(int(i), str(split_of[i])) for i in range(num_images)]


def image_id(index):
    return f"syn-{index:07d}"


class RenderImage(beam.DoFn):
    """(index, split) -> dict(id, split, png, strengths): render, measure, encode."""

    def __init__(self, seed, image_size):
        self.seed, self.image_size = seed, image_size
        self.rendered = transforms.counter("images_rendered")
        self.unreadable = transforms.counter("images_subject_not_found")

    def process(self, item):
        from PIL import Image
        index, split = item
        rng = np.random.default_rng([self.seed, 2, index])
        latent = rng.uniform(0.0, 1.0, len(attributes.ATTRIBUTE_NAMES))
        pixels = render.to_uint8(render.render(latent, rng, self.image_size))
        strengths = measure(pixels)  # measured on the stored pixels: the ground truth
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        self.rendered.inc()
        if np.isnan(strengths[attributes.ATTRIBUTE_NAMES.index("size")]):
            self.unreadable.inc()
        yield dict(id=image_id(index), split=split, png=buffer.getvalue(), strengths=strengths)


class MakePairs(beam.DoFn):
    """(image split, [(id, strengths)]) -> unlabelled pairs for every attribute and pair set."""

    def __init__(self, seed, attribute_names, counts):
        self.seed, self.attribute_names, self.counts = seed, attribute_names, counts

    def process(self, item):
        image_split, members = item
        members = sorted(members)  # GroupByKey order is arbitrary: sort for determinism
        ids = [m[0] for m in members]
        table = np.stack([m[1] for m in members])
        for attribute in self.attribute_names:
            column = attributes.ATTRIBUTE_NAMES.index(attribute)
            spec = attributes.BY_NAME[attribute]
            for split, kind in pair_splits(image_split).items():
                rng = crowd.pair_rng(self.seed, "pairs", attribute, split)
                count = self.counts[image_split]
                if kind == "coarse":
                    chosen = pairs.coarse_pairs(len(ids), count, rng)
                else:
                    chosen = pairs.fine_pairs(table[:, column], spec.scale, count, rng)
                for a, b in chosen:
                    yield dict(attribute=attribute, split=split, id_a=ids[a], id_b=ids[b],
                               strengths_a=table[a], strengths_b=table[b], column=column)


class CrowdLabel(beam.DoFn):
    """Labels a pair with the simulated crowd; illegible pairs are counted and dropped."""

    def __init__(self, seed):
        self.seed, self.crowd = seed, crowd.Crowd()
        self.illegible = transforms.counter("pairs_rejected_illegible")
        self.equal = transforms.counter("pairs_labelled_equal")

    def process(self, pair):
        pair = dict(pair)
        column = pair.pop("column")
        sa, sb = pair["strengths_a"][column], pair["strengths_b"][column]
        rng = crowd.pair_rng(self.seed, "crowd", pair["attribute"], pair["split"], pair["id_a"],
                             pair["id_b"])
        votes = self.crowd.label(sa, sb, attributes.BY_NAME[pair["attribute"]].scale, rng)
        if votes is None:
            self.illegible.inc()
            return
        if votes["target"] == schema.EQUAL_TARGET:
            self.equal.inc()
        yield dict(pair, **votes, true_target=crowd.true_target(sa, sb), source=SOURCE)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="data directory to write")
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--split_fractions", default="0.6,0.2,0.2",
                        help="fractions of images for train,test,generator")
    parser.add_argument("--pairs_per_attribute", type=int, default=1000,
                        help="train pairs per attribute and pair set (coarse, fine)")
    parser.add_argument("--test_pairs_per_attribute", type=int, default=300)
    parser.add_argument("--image_size", type=int, default=64, choices=(32, 64, 112, 128, 224))
    parser.add_argument("--attributes", default="all",
                        help=f"comma list out of {','.join(attributes.ATTRIBUTE_NAMES)}")
    parser.add_argument("--num_shards", type=int, default=2, help="shards per attribute and split")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_attributes(value):
    if value == "all":
        return list(attributes.ATTRIBUTE_NAMES)
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = sorted(set(names) - set(attributes.ATTRIBUTE_NAMES))
    if unknown:
        raise SystemExit(f"make_synthetic: unknown attribute(s) {', '.join(unknown)}; known: "
                         f"{', '.join(attributes.ATTRIBUTE_NAMES)}")
    return names


def run(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    names = parse_attributes(args.attributes)
    fractions = [float(f) for f in args.split_fractions.split(",")]
    if len(fractions) != 3 or min(fractions) <= 0:
        raise SystemExit("make_synthetic: --split_fractions needs three positive numbers")
    started = time.time()
    out = args.output_dir.rstrip("/")
    transforms.clear_output(out)
    items = assign_splits(args.num_images, fractions, args.seed)
    counts = {"train": args.pairs_per_attribute, "test": args.test_pairs_per_attribute}
    keys = [(a, s) for a in names for split in ("train", "test") for s in pair_splits(split)]
    base_meta = dict(
        dataset=SOURCE, attributes=names, image_size=[args.image_size, args.image_size],
        image_format="png", seed=args.seed,
        attribute_info={n: attributes.attribute_info()[n] for n in names},
        strength_names=list(attributes.ATTRIBUTE_NAMES),
        pair_sets={"coarse": "random pairs (like Zap50K-1)",
                   "fine": "|difference| in {} x scale (like Zap50K-2)".format(
                       pairs.FINE_DIFFERENCE)},
        command=transforms.command_line("beam_jobs.make_synthetic", argv))

    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        images = (p
                  | "Indices" >> beam.Create(items)
                  | "Spread" >> beam.Reshuffle()
                  | "Render" >> beam.ParDo(RenderImage(args.seed, args.image_size)))
        image_bytes = images | "IdBytes" >> beam.Map(lambda r: (r["id"], r["png"]))
        labelled = (images
                    | "Paired" >> beam.Filter(lambda r: r["split"] != "generator")
                    | "BySplit" >> beam.Map(lambda r: (r["split"], (r["id"], r["strengths"])))
                    | "GroupSplit" >> beam.GroupByKey()
                    | "MakePairs" >> beam.ParDo(MakePairs(args.seed, names, counts))
                    | "Crowd" >> beam.ParDo(CrowdLabel(args.seed)))
        summaries = ((labelled, image_bytes)
                     | "AttachImages" >> transforms.AttachImages()
                     | "Encode" >> transforms.EncodePairs()
                     | "WritePairs" >> transforms.WritePairShards(out, keys, args.num_shards))
        generator = images | "Generator" >> beam.Filter(lambda r: r["split"] == "generator")
        _ = (generator
             | "EncodeImages" >> beam.Map(lambda r: schema.encode_image(
                 image=r["png"], image_id=r["id"], strengths=r["strengths"], source=SOURCE,
                 split=r["split"]))
             | "WriteImages" >> beam.io.WriteToTFRecord(
                 schema.image_shard_prefix(out, "generator"),
                 file_name_suffix=schema.SHARD_SUFFIX, num_shards=args.num_shards))
        image_counts = (images
                        | "SplitOf" >> beam.Map(lambda r: r["split"])
                        | "CountSplits" >> beam.combiners.Count.PerElement())
        _ = (summaries, image_counts) | "Metadata" >> transforms.WriteMetadata(out, base_meta)
    result = p.result
    transforms.print_summary("make_synthetic", out, result, started)
    return result


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    run()
