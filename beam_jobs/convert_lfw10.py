"""Converts LFW-10 (IIIT Hyderabad) into a data directory.

    python -m beam_jobs.convert_lfw10 --input_dir=LFW10 --output_dir=data/lfw10 \
        [--attributes=smile,mouthopen]

Reads LFW10/annotations/<attribute>{train,test}.mat (images_compare: R x 3 cell, columns 2-3 the
file names of images A and B; attribute_strengths: R x 4, columns 2-4 the votes "A more",
"B more", "about the same") and LFW10/images/<n>.jpg. The label is the vote with most votes
(ties go to the earlier column, as the reference loader's argmax), agreement its share.
The images the pairs use are stored once, in image table `all` (no strengths).
"""
import argparse
import logging
import os

import apache_beam as beam
import numpy as np

from beam_jobs import cli, transforms
from relattr_tf.data import matfiles

ATTRIBUTES = ("baldhead", "darkhair", "eyesopen", "goodlooking", "masculinelooking",
              "mouthopen", "smile", "v_teeth", "vforehead", "young")
TARGET_OF_VOTE = (1.0, 0.0, 0.5)  # argmax over ("A more", "B more", "about the same")
TABLE = "all"  # the one image table: the images the pairs use


def read_pairs(path, attribute, split):
    mat = matfiles.load_mat(path)
    compare = np.asarray(matfiles.variable(mat, "images_compare", path), dtype=object)
    votes = matfiles.matrix(matfiles.variable(mat, "attribute_strengths", path), path,
                            "attribute_strengths", columns=4)
    if compare.ndim != 2 or compare.shape[1] != 3:
        raise matfiles.MatError(f"{path}: images_compare should be an R x 3 cell, got shape "
                                f"{compare.shape}")
    if compare.shape[0] != votes.shape[0]:
        raise matfiles.MatError(f"{path}: images_compare has {compare.shape[0]} rows but "
                                f"attribute_strengths has {votes.shape[0]}")
    if np.any(votes[:, 1:] < 0):
        raise matfiles.MatError(f"{path}: attribute_strengths holds negative vote counts")
    pairs = []
    for row in range(compare.shape[0]):
        name_a, name_b = matfiles.to_str(compare[row, 1]), matfiles.to_str(compare[row, 2])
        counts = votes[row, 1:4]
        total = counts.sum()
        if total <= 0:
            raise matfiles.MatError(f"{path}: row {row + 1} of attribute_strengths has no votes")
        choice = int(np.argmax(counts))
        pairs.append(dict(attribute=attribute, split=split, id_a=name_a, id_b=name_b,
                          target=TARGET_OF_VOTE[choice], agreement=float(counts[choice] / total),
                          source="lfw10"))
    return pairs


def run(argv=None):
    parser = cli.add_conversion_args(cli.JobArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--attributes", default=",".join(ATTRIBUTES),
                        help="comma list of the annotation file spellings")
    args, beam_args = parser.parse_known_args(argv)
    attributes = list(dict.fromkeys(a.strip() for a in args.attributes.split(",") if a.strip()))
    unknown = sorted(set(attributes) - set(ATTRIBUTES))
    if unknown or not attributes:
        raise SystemExit(f"convert_lfw10: unknown attribute(s) {', '.join(unknown)}; known: "
                         f"{', '.join(ATTRIBUTES)}")
    pairs, sources = [], {}
    for attribute in attributes:
        for split in ("train", "test"):
            path = os.path.join(args.input_dir, "annotations", f"{attribute}{split}.mat")
            pairs += read_pairs(path, attribute, split)
            sources[path] = transforms.file_sha256(path)
    logging.warning("convert_lfw10: %d pairs; assumed column 1 of images_compare and of "
                    "attribute_strengths unused (UNVERIFIED in the format notes), split votes "
                    "resolved to the earlier column", len(pairs))
    names = sorted({p["id_a"] for p in pairs} | {p["id_b"] for p in pairs})
    images = [(TABLE, n, os.path.join(args.input_dir, "images", n), None) for n in names]
    base_meta = dict(dataset="lfw10", attributes=attributes,
                     image_size=[args.image_size] * 2 if args.image_size else None,
                     image_format="jpeg", strength_names=[], sources=sources,
                     command=cli.command_line("beam_jobs.convert_lfw10", argv))
    return transforms.run_conversion(
        "convert_lfw10", args.output_dir, beam_args, images=images, tables=[TABLE],
        splits={(a, s): [TABLE] for a in attributes for s in ("train", "test")},
        base_meta=base_meta, image_size=args.image_size, num_shards=args.num_shards,
        max_rejected_fraction=args.max_rejected_fraction,
        make_pairs=lambda p: p | "Pairs" >> beam.Create(pairs))


if __name__ == "__main__":
    cli.main(run, "convert_lfw10")
