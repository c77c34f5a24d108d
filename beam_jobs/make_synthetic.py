"""Generates the embedded relative-attribute benchmark as a data directory (the default data set).

    python -m beam_jobs.make_synthetic --output_dir=data/synthetic
    python -m beam_jobs.make_synthetic --output_dir=DIR --num_images=20000 --image_size=128 \
        --runner=DirectRunner --direct_running_mode=multi_processing --direct_num_workers=2

Images are rendered from latent strengths, measured on their pixels (the ground truth), paired
(coarse: random; fine: close strengths) and labelled by a simulated crowd of 5. Splits of images
are disjoint image tables, each image stored once with its strength vector and subject box:
pairs of `train`/`train_fine` name images of table train, `test`/`test_fine` of table test;
table generator has no pairs. With --pretrain_images=N a `pretrain` table of N more images is
added, labelled with what is in each picture rather than how much of an attribute it shows
(distractor count and colours, the subject's grid cell, the texture's orientation: the
pretraining task); the other tables stay exactly as without it. Any other flag is a Beam
pipeline option (--runner, --direct_num_workers, --setup_file, ...); --runner=dask runs it on
Dask (beam_jobs.runners).
"""
import argparse
import io
import time

import apache_beam as beam
import numpy as np
from PIL import Image

from beam_jobs import cli, counters, records, runners, transforms
from relattr_tf.data import schema
from relattr_tf.data.synthetic import attributes, crowd, pairs, render
from relattr_tf.data.synthetic.measure import measure, subject_box

SOURCE = "synthetic"
IMAGE_SPLITS = ("train", "test", "generator")
PRETRAIN = "pretrain"
GENERATOR = "generator"


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
    """(index, split) -> image dict (table = split, id, image PNG, strengths, box, source):
    render, measure, encode."""

    def __init__(self, seed, image_size, pretrain_scenery="benchmark", pretrain_global="drawn",
                 subject_masks=False):
        self.seed, self.image_size, self.subject_masks = seed, image_size, subject_masks
        self.pretrain_scenery = render.SCENERIES[pretrain_scenery]
        self.pretrain_global = pretrain_global
        self.rendered = counters.counter("images_rendered")
        self.unreadable = counters.counter("images_subject_not_found")

    def process(self, item):
        index, split = item
        rng = np.random.default_rng([self.seed, 2, index])
        latent = rng.uniform(0.0, 1.0, len(attributes.ATTRIBUTE_NAMES))
        scenery = render.BENCHMARK_SCENERY
        if split == PRETRAIN:
            scenery = self.pretrain_scenery
            if self.pretrain_global == "middle":
                latent[attributes.GLOBAL_COLUMNS] = 0.5
        scene = {}
        pixels = render.to_uint8(render.render(latent, rng, self.image_size, scene, scenery))
        strengths = measure(pixels)  # measured on the stored pixels: the ground truth
        buffer = io.BytesIO()
        if self.subject_masks and split == GENERATOR:
            # The renderer's subject coverage as the PNG's alpha: the layered generator's mask.
            pixels_rgba = np.concatenate([pixels, render.subject_coverage(scene)], axis=-1)
            Image.fromarray(pixels_rgba).save(buffer, format="PNG")
        else:
            Image.fromarray(pixels).save(buffer, format="PNG")
        self.rendered.inc()
        box = subject_box(pixels)
        if box is None:
            self.unreadable.inc()
        yield dict(table=split, id=image_id(index), image=buffer.getvalue(),
                   strengths=strengths, box=box, source=SOURCE,
                   labels=(render.scene_labels(scene, render.label_heads(scenery))
                           if split == PRETRAIN else None))


PAIR_BATCH_SIZE = 10000


class MakePairs(beam.DoFn):
    """(image split, [(id, strengths)]) -> unlabelled pairs for every attribute and pair set,
    in batches: dict(attribute, split, id_a: [...], id_b: [...], strength_a: array,
    strength_b: array) of at most PAIR_BATCH_SIZE pairs (one Beam element per batch)."""

    def __init__(self, seed, attribute_names, counts, batch_size=PAIR_BATCH_SIZE):
        self.seed, self.attribute_names, self.counts = seed, attribute_names, counts
        self.batch_size = batch_size

    def process(self, item):
        image_split, members = item
        members = sorted(members, key=lambda m: m[0])  # GroupByKey order is arbitrary
        ids = np.array([m[0] for m in members], dtype=object)
        table = np.stack([m[1] for m in members])
        for attribute in self.attribute_names:
            column = table[:, attributes.ATTRIBUTE_NAMES.index(attribute)]
            spec = attributes.BY_NAME[attribute]
            for split, kind in pair_splits(image_split).items():
                rng = crowd.pair_rng(self.seed, "pairs", attribute, split)
                count = self.counts[image_split]
                if kind == "coarse":
                    chosen = pairs.coarse_pairs(len(ids), count, rng)
                else:
                    chosen = pairs.fine_pairs(column, spec.scale, count, rng)
                for start in range(0, len(chosen), self.batch_size):
                    a, b = chosen[start:start + self.batch_size].T
                    yield dict(attribute=attribute, split=split, id_a=ids[a].tolist(),
                               id_b=ids[b].tolist(), strength_a=column[a], strength_b=column[b])


class CrowdLabel(beam.DoFn):
    """A batch of unlabelled pairs -> dict(pairs=[the pair dicts the simulated crowd could
    label], illegible=pairs it could not, equal=pairs labelled equal)."""

    def __init__(self, seed):
        self.seed, self.crowd = seed, crowd.Crowd()
        self.illegible = counters.counter("pairs_rejected_illegible")
        self.equal = counters.counter("pairs_labelled_equal")

    def process(self, batch):
        attribute, split = batch["attribute"], batch["split"]
        scale = attributes.BY_NAME[attribute].scale
        labelled, illegible, equal = [], 0, 0
        for id_a, id_b, sa, sb in zip(batch["id_a"], batch["id_b"], batch["strength_a"],
                                      batch["strength_b"]):
            rng = crowd.pair_rng(self.seed, "crowd", attribute, split, id_a, id_b)
            votes = self.crowd.label(sa, sb, scale, rng)
            if votes is None:
                illegible += 1
                continue
            equal += votes["target"] == schema.EQUAL_TARGET
            labelled.append(dict(attribute=attribute, split=split, id_a=id_a, id_b=id_b,
                                 **votes, true_target=crowd.true_target(sa, sb),
                                 source=SOURCE))
        self.illegible.inc(illegible)
        self.equal.inc(int(equal))
        yield dict(pairs=labelled, illegible=illegible, equal=int(equal))


def split_fractions(text):
    """--split_fractions: three positive numbers (train, test, generator)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"needs three positive numbers (train,test,generator), got {text!r}")
    return values


def build_parser():
    parser = cli.JobArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="data directory to write")
    parser.add_argument("--num_images", type=cli.positive_int, default=2000)
    parser.add_argument("--split_fractions", type=split_fractions, default="0.6,0.2,0.2",
                        help="fractions of images for train,test,generator")
    parser.add_argument("--pretrain_images", type=cli.non_negative_int, default=0,
                        help="images of the labelled pretrain table (0: none), besides "
                             "--num_images")
    parser.add_argument("--pretrain_scenery", choices=sorted(render.SCENERIES),
                        default="benchmark",
                        help="background and light ranges of the pretrain images; varied adds "
                             "heads about the background's level, tint and texture strength")
    parser.add_argument("--subject_masks", action="store_true",
                        help="store each generator-table image's subject mask (the renderer's "
                             "coverage) as its PNG's alpha channel, for the layered generator")
    parser.add_argument("--pretrain_global", choices=("drawn", "middle"), default="drawn",
                        help="the pretrain images' global strengths (brightness, warmth, "
                             "contrast): drawn as the benchmark's, or all held at 0.5")
    parser.add_argument("--pairs_per_attribute", type=cli.non_negative_int, default=1000,
                        help="train pairs per attribute and pair set (coarse, fine)")
    parser.add_argument("--test_pairs_per_attribute", type=cli.non_negative_int,
                        default=300)
    parser.add_argument("--image_size", type=int, default=64, choices=(32, 64, 112, 128, 224))
    parser.add_argument("--attributes", default="all",
                        help=f"comma list out of {','.join(attributes.ATTRIBUTE_NAMES)}")
    parser.add_argument("--num_shards", type=cli.non_negative_int, default=0,
                        help="shards per image table and pair split (0: one per ~128 MB)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    return cli.add_common_args(parser)


def parse_attributes(value):
    if value == "all":
        return list(attributes.ATTRIBUTE_NAMES)
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = sorted(set(names) - set(attributes.ATTRIBUTE_NAMES))
    if unknown or not names:
        raise SystemExit(f"make_synthetic: unknown attribute(s) {', '.join(unknown)}; known: "
                         f"{', '.join(attributes.ATTRIBUTE_NAMES)}")
    return list(dict.fromkeys(names))


def run(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    names = parse_attributes(args.attributes)
    started = time.time()
    out = args.output_dir.rstrip("/")
    items = assign_splits(args.num_images, args.split_fractions, args.seed)
    items += [(args.num_images + i, PRETRAIN) for i in range(args.pretrain_images)]
    tables = {split: {} for split in IMAGE_SPLITS}
    if args.subject_masks:
        tables[GENERATOR] = {"mask": "alpha"}
    if args.pretrain_images:
        tables[PRETRAIN] = {"label_heads": [dict(h) for h in render.label_heads(
            render.SCENERIES[args.pretrain_scenery])]}
        # Said only when not the benchmark's draws, so a default build's metadata is unchanged.
        for key, value, usual in (("scenery", args.pretrain_scenery, "benchmark"),
                                  ("global_strengths", args.pretrain_global, "drawn")):
            if value != usual:
                tables[PRETRAIN][key] = value
    sizes = {split: sum(1 for _, s in items if s == split) for split in IMAGE_SPLITS}
    if min(sizes["train"], sizes["test"]) < 2:
        raise SystemExit(f"make_synthetic: --num_images={args.num_images} with "
                         f"--split_fractions={','.join(f'{f:g}' for f in args.split_fractions)} "
                         f"gives {sizes['train']} train and {sizes['test']} test images; pairs "
                         f"need at least 2 in each")
    records.clear_output(out)
    counts = {"train": args.pairs_per_attribute, "test": args.test_pairs_per_attribute}
    splits = {(a, s): [split] for a in names for split in ("train", "test")
              for s in pair_splits(split)}
    base_meta = dict(
        dataset=SOURCE, attributes=names, image_size=[args.image_size, args.image_size],
        image_format="png", seed=args.seed, sources={},
        attribute_info={n: attributes.attribute_info()[n] for n in names},
        strength_names=list(attributes.ATTRIBUTE_NAMES),
        pair_sets={"coarse": "random pairs (like Zap50K-1)",
                   "fine": "|difference| in {} x scale (like Zap50K-2)".format(
                       pairs.FINE_DIFFERENCE)},
        command=cli.command_line("beam_jobs.make_synthetic", argv))

    with runners.job_pipeline(beam_args) as p:
        images = (p
                  | "Indices" >> beam.Create(items)
                  | "Spread" >> beam.Reshuffle()
                  | "Render" >> beam.ParDo(RenderImage(
                      args.seed, args.image_size, args.pretrain_scenery, args.pretrain_global,
                      args.subject_masks)))
        crowd_batches = (images
                         | "Paired" >> beam.Filter(lambda r: r["table"] in ("train", "test"))
                         | "BySplit" >> beam.Map(
                             lambda r: (r["table"], (r["id"], r["strengths"])))
                         | "GroupSplit" >> beam.GroupByKey()
                         | "MakePairs" >> beam.ParDo(MakePairs(args.seed, names, counts))
                         | "SpreadPairs" >> beam.Reshuffle()  # labelling is the costly step
                         | "Crowd" >> beam.ParDo(CrowdLabel(args.seed)))
        labelled = crowd_batches | "Labelled" >> beam.FlatMap(
            lambda batch: [batch["pairs"]] if batch["pairs"] else [])
        job_counts = (
            images | "CountRendered" >> counters.CountElements("images_rendered"),
            images | "CountNoSubject" >> counters.CountElements(
                "images_subject_not_found", lambda r: r["box"] is None),
            crowd_batches | "CountIllegible" >> counters.CountElements(
                "pairs_rejected_illegible", lambda batch: batch["illegible"]),
            crowd_batches | "CountEqual" >> counters.CountElements(
                "pairs_labelled_equal", lambda batch: batch["equal"])) | counters.SumCounts()
        _ = ((images, labelled, job_counts)
             | "Write" >> records.WriteDataDir(out, base_meta, tables, splits,
                                               args.num_shards))
    return transforms.print_summary("make_synthetic", out, started)


if __name__ == "__main__":
    cli.main(run, "make_synthetic")
