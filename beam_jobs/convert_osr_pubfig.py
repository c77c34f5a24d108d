"""Converts OSR or PubFig (Parikh & Grauman's relative attributes, data.mat) into a data directory.

    python -m beam_jobs.convert_osr_pubfig --dataset=pubfig --input_dir=relative_attributes/pubfig \
        --output_dir=data/pubfig
    python -m beam_jobs.convert_osr_pubfig --dataset=osr --input_dir=relative_attributes/osr \
        --output_dir=data/osr --test_pair_fraction=0.05

Labels are class-level: relative_ordering[a, c] ranks class c on attribute a (larger = more).
Train pairs are all pairs i < j of the training images, test pairs those of the test images;
same-class and tied-class pairs are equal (t = 0.5). --test_pair_fraction keeps a seeded random
subset of the test pairs (OSR has 3 million; the reference code keeps 5%).

Each image is stored once, in image table `train` or `test` (by used_for_training), with its
strength vector: its class's rank on every attribute (`strength_names` = the attributes). The
pairs of split train name images of table train, those of split test images of table test.
"""
import argparse
import itertools
import logging
import os

import apache_beam as beam
import numpy as np

from beam_jobs import cli, transforms
from relattr_tf.data import matfiles

IMAGE_FOLDERS = {"osr": "spatial_envelope_256x256_static_8outdoorcategories",
                 "pubfig": "images"}


def read_labels(path):
    """Image names, class indexes (0-based), training flags, attribute names, orderings."""
    mat = matfiles.load_mat(path)
    names = matfiles.strings(matfiles.variable(mat, "im_names", path))
    classes = matfiles.index_vector(matfiles.variable(mat, "class_labels", path)) - 1
    training = matfiles.index_vector(matfiles.variable(mat, "used_for_training", path))
    attributes = matfiles.strings(matfiles.variable(mat, "attribute_names", path))
    class_names = matfiles.strings(matfiles.variable(mat, "class_names", path))
    ordering = matfiles.matrix(matfiles.variable(mat, "relative_ordering", path), path,
                               "relative_ordering", columns=len(class_names))
    if ordering.shape[0] != len(attributes):
        raise matfiles.MatError(f"{path}: relative_ordering has {ordering.shape[0]} rows, "
                                f"expected one per attribute ({len(attributes)})")
    if not len(names) == len(classes) == len(training):
        raise matfiles.MatError(f"{path}: im_names ({len(names)}), class_labels "
                                f"({len(classes)}) and used_for_training ({len(training)}) "
                                f"differ in length")
    if classes.min() < 0 or classes.max() >= len(class_names):
        raise matfiles.MatError(f"{path}: class_labels should be 1..{len(class_names)} "
                                f"(1-based), found {classes.min() + 1}..{classes.max() + 1}")
    if not set(np.unique(training)) <= {0, 1}:
        raise matfiles.MatError(f"{path}: used_for_training should hold 0/1, found "
                                f"{sorted(set(np.unique(training)))}")
    return names, classes, training.astype(bool), attributes, ordering


class ClassPairs(beam.DoFn):
    """(attribute index, split) -> every image pair i < j of that split, labelled by class."""

    def __init__(self, dataset, names, classes, in_split, attributes, ordering, fraction, seed):
        self.dataset, self.names, self.classes = dataset, names, classes
        self.in_split, self.attributes, self.ordering = in_split, attributes, ordering
        self.fraction, self.seed = fraction, seed

    def process(self, task):
        a, split = task
        members = np.flatnonzero(self.in_split[split])
        ranks = self.ordering[a, self.classes]  # every image's class rank on attribute a
        rng = np.random.default_rng([self.seed, a])
        for i, j in itertools.combinations(members, 2):
            if split == "test" and self.fraction < 1.0 and rng.uniform() >= self.fraction:
                continue
            yi, yj = ranks[i], ranks[j]
            yield dict(attribute=self.attributes[a], split=split, id_a=self.names[i],
                       id_b=self.names[j], target=1.0 if yi > yj else 0.0 if yi < yj else 0.5,
                       source=self.dataset)


def run(argv=None):
    parser = cli.add_conversion_args(cli.JobArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--dataset", required=True, choices=sorted(IMAGE_FOLDERS))
    parser.add_argument("--test_pair_fraction", type=cli.fraction, default=1.0,
                        help="keep this seeded random fraction (0, 1] of the test pairs")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0)
    args, beam_args = parser.parse_known_args(argv)
    label_path = os.path.join(args.input_dir, "data.mat")
    names, classes, training, raw_attributes, ordering = read_labels(label_path)
    attributes = [transforms.safe_name(a) for a in raw_attributes]
    logging.warning("%s: %d images (%d train), %d classes, attributes %s; class-level labels; "
                    "pair order follows itertools.combinations (i < j in data.mat order)",
                    label_path, len(names), training.sum(), ordering.shape[1],
                    ", ".join(attributes))
    folder = os.path.join(args.input_dir, IMAGE_FOLDERS[args.dataset])
    strengths = ordering[:, classes]  # (attributes, images): each image's class ranks
    images = [("train" if training[i] else "test", name, os.path.join(folder, name),
               strengths[:, i]) for i, name in enumerate(names)]
    in_split = {"train": training, "test": ~training}
    splits = {(a, s): [s] for a in attributes for s in ("train", "test")}
    tasks = [(a, s) for a in range(len(attributes)) for s in ("train", "test")]
    pairs_fn = ClassPairs(args.dataset, names, classes, in_split, attributes, ordering,
                          args.test_pair_fraction, args.seed)
    base_meta = dict(
        dataset=args.dataset, attributes=attributes, image_size=(
            [args.image_size] * 2 if args.image_size else None),
        image_format="jpeg", strength_names=attributes,
        strengths="class-level rank from relative_ordering (larger = more)",
        test_pair_fraction=args.test_pair_fraction, seed=args.seed,
        sources={label_path: transforms.file_sha256(label_path)},
        command=cli.command_line("beam_jobs.convert_osr_pubfig", argv))
    return transforms.run_conversion(
        f"convert_osr_pubfig ({args.dataset})", args.output_dir, beam_args,
        images=images, splits=splits, tables=["train", "test"], base_meta=base_meta,
        image_size=args.image_size, num_shards=args.num_shards,
        max_rejected_fraction=args.max_rejected_fraction,
        make_pairs=lambda p: (p | "Tasks" >> beam.Create(tasks)
                              | "SpreadTasks" >> beam.Reshuffle()
                              | "ClassPairs" >> beam.ParDo(pairs_fn)))


if __name__ == "__main__":
    cli.main(run, "convert_osr_pubfig")
