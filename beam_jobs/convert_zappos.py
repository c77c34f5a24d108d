"""Converts UT-Zappos50K (Zap50K-1, Zap50K-2 or the lexi attributes) into a data directory.

    python -m beam_jobs.convert_zappos --collection=zap50k1 --input_dir=ZAPPOS --output_dir=data/zap50k1
    python -m beam_jobs.convert_zappos --collection=zap50k2 --input_dir=ZAPPOS --output_dir=data/zap50k2
    python -m beam_jobs.convert_zappos --collection=lexi --input_dir=ZAPPOS --output_dir=data/zap50k_lexi

ZAPPOS holds the unpacked archives: ut-zap50k-data/ (image-path.mat, zappos-labels.mat,
zappos-labels-fg.mat, train-test-splits.mat), ut-zap50k-images/ (or ut-zap50k-images-square/ with
--images=square) and, for lexi, ut-zap50k-lexi/ (also found inside ut-zap50k-data/).

- zap50k1: per attribute (open, pointy, sporty, comfort) ten splits `train-01`..`train-10` and
  `test-01`..`test-10` from trainIndexAll / testIndexAll (row numbers into mturkOrder).
- zap50k2: `train` = all of mturkOrder (+ mturkEqual at t = 0.5 with --include_equal),
  `test` = the fine-grained mturkHard pairs.
- lexi: the 10 lexi attributes (v7.3 file), a seeded `train` / `test` split (--test_fraction).
Rows are (image A, image B, attribute id, label 1 = A more / 2 = B more / 3 = equal,
confidence 1 = very .. 3 = not, agreement). Image paths are matched against the image tree,
indexed once, with brand folders normalised (trailing dots, %2E, HTML entity &#174;). The
images the pairs use are stored once, in image table `all` (no strengths), by their
image-path.mat name.
"""
import argparse
import logging
import os

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_jobs import cli, transforms
from relattr_tf.data import matfiles

ZAP50K_ATTRIBUTES = ("open", "pointy", "sporty", "comfort")
TARGET_OF_LABEL = {1: 1.0, 2: 0.0, 3: 0.5}
IMAGE_FOLDERS = {"original": "ut-zap50k-images", "square": "ut-zap50k-images-square"}
TABLE = "all"  # the one image table: the images the pairs use


def normalise_component(name):
    """One path component as the three spellings of the brand folders agree on."""
    name = name.replace("%2E", ".").replace("&#174;", "").replace("\u00ae", "")
    return name.rstrip(".").strip()


def normalise_path(path):
    return "/".join(normalise_component(c) for c in path.replace("\\", "/").split("/") if c)


def index_image_tree(root):
    """{normalised Category/SubCategory/Brand/file: real path} of every JPEG under root."""
    found = FileSystems.match([f"{root.rstrip('/')}/*/*/*/*.jpg"])[0].metadata_list
    index = {}
    for metadata in found:
        relative = os.path.relpath(metadata.path, root) if "://" not in root else \
            metadata.path[len(root.rstrip("/")) + 1:]
        index[normalise_path(relative)] = metadata.path
    return index


def label_rows(rows, path, name, attribute, split, image_names, min_columns=4):
    """Pair dicts from Zappos label rows (1-based image numbers into image-path.mat)."""
    rows = matfiles.matrix(rows, path, name, min_columns=min_columns)
    pairs = []
    for r, row in enumerate(rows):
        a, b, label = int(row[0]), int(row[1]), row[3]
        if not (1 <= a <= len(image_names) and 1 <= b <= len(image_names)):
            raise matfiles.MatError(f"{path}: {name} row {r + 1}: image numbers {a}, {b} outside "
                                    f"1..{len(image_names)} of image-path.mat")
        if label not in TARGET_OF_LABEL:
            raise matfiles.MatError(f"{path}: {name} row {r + 1}: label {label:g}, expected 1 (A "
                                    f"more), 2 (B more) or 3 (equal)")
        pair = dict(attribute=attribute, split=split, id_a=image_names[a - 1],
                    id_b=image_names[b - 1], target=TARGET_OF_LABEL[int(label)],
                    source="zappos50k")
        if rows.shape[1] >= 6:
            pair["confidence"] = float(np.clip((3.0 - row[4]) / 2.0, 0.0, 1.0))
            pair["agreement"] = float(row[5])
        pairs.append(pair)
    return pairs


def per_attribute(mat, name, path, count):
    """A 1 x count cell of per-attribute matrices."""
    value = matfiles.cells(matfiles.variable(mat, name, path))
    if len(value) != count:
        raise matfiles.MatError(f"{path}: {name} should be a cell of {count} (one per "
                                f"attribute), got {len(value)}")
    return value


def zap50k1_pairs(data_dir, image_names, include_equal):
    labels_path = os.path.join(data_dir, "zappos-labels.mat")
    splits_path = os.path.join(data_dir, "train-test-splits.mat")
    labels, splits = matfiles.load_mat(labels_path), matfiles.load_mat(splits_path)
    order = per_attribute(labels, "mturkOrder", labels_path, 4)
    train_index = per_attribute(splits, "trainIndexAll", splits_path, 4)
    test_index = per_attribute(splits, "testIndexAll", splits_path, 4)
    pairs = []
    for a, attribute in enumerate(ZAP50K_ATTRIBUTES):
        rows = matfiles.matrix(order[a], labels_path, f"mturkOrder{{{a + 1}}}", min_columns=4)
        for kind, index in (("train", train_index[a]), ("test", test_index[a])):
            split_cells = matfiles.cells(index)
            if len(split_cells) != 10:
                raise matfiles.MatError(f"{splits_path}: {kind}IndexAll{{{a + 1}}} should hold 10 "
                                        f"splits, got {len(split_cells)}")
            for s, chosen in enumerate(split_cells, start=1):
                numbers = matfiles.index_vector(chosen)
                if numbers.size and (numbers.min() < 1 or numbers.max() > len(rows)):
                    raise matfiles.MatError(
                        f"{splits_path}: {kind}IndexAll{{{a + 1}}}{{{s}}} holds row numbers "
                        f"outside 1..{len(rows)} of mturkOrder{{{a + 1}}}")
                pairs += label_rows(rows[numbers - 1], labels_path, f"mturkOrder{{{a + 1}}}",
                                    attribute, f"{kind}-{s:02d}", image_names)
        if include_equal:
            pairs += equal_pairs(labels, labels_path, a, attribute,
                                 [f"train-{s:02d}" for s in range(1, 11)], image_names)
    return pairs, [labels_path, splits_path], [
        (a, f"{k}-{s:02d}") for a in ZAP50K_ATTRIBUTES for k in ("train", "test")
        for s in range(1, 11)]


def equal_pairs(labels, path, a, attribute, splits, image_names):
    if "mturkEqual" not in labels:
        raise matfiles.MatError(f"{path}: --include_equal needs the variable 'mturkEqual' "
                                f"(newer releases of zappos-labels.mat)")
    rows = matfiles.matrix(per_attribute(labels, "mturkEqual", path, 4)[a], path,
                           f"mturkEqual{{{a + 1}}}", min_columns=4).copy()
    rows[:, 3] = 3  # the equal set: t = 0.5 whatever column 4 holds
    out = []
    for split in splits:
        out += label_rows(rows, path, f"mturkEqual{{{a + 1}}}", attribute, split, image_names)
    return out


def zap50k2_pairs(data_dir, image_names, include_equal):
    labels_path = os.path.join(data_dir, "zappos-labels.mat")
    fine_path = os.path.join(data_dir, "zappos-labels-fg.mat")
    labels, fine = matfiles.load_mat(labels_path), matfiles.load_mat(fine_path)
    order = per_attribute(labels, "mturkOrder", labels_path, 4)
    hard = per_attribute(fine, "mturkHard", fine_path, 4)
    pairs = []
    for a, attribute in enumerate(ZAP50K_ATTRIBUTES):
        pairs += label_rows(order[a], labels_path, f"mturkOrder{{{a + 1}}}", attribute, "train",
                            image_names)
        pairs += label_rows(hard[a], fine_path, f"mturkHard{{{a + 1}}}", attribute, "test",
                            image_names)
        if include_equal:
            pairs += equal_pairs(labels, labels_path, a, attribute, ["train"], image_names)
    return pairs, [labels_path, fine_path], [
        (a, s) for a in ZAP50K_ATTRIBUTES for s in ("train", "test")]


def find_lexi_file(input_dir):
    for folder in ("ut-zap50k-lexi", os.path.join("ut-zap50k-data", "ut-zap50k-lexi")):
        path = os.path.join(input_dir, folder, "zappos-labels-real-lexi.mat")
        if FileSystems.exists(path):
            return path
    raise matfiles.MatError(f"{input_dir}: zappos-labels-real-lexi.mat not found in "
                            f"ut-zap50k-lexi/ or ut-zap50k-data/ut-zap50k-lexi/")


def lexi_pairs(input_dir, image_names, test_fraction, seed):
    path = find_lexi_file(input_dir)
    mat = matfiles.load_mat(path)
    names = [transforms.safe_name(n) for n in
             matfiles.strings(matfiles.variable(mat, "attrNames", path))]
    order = per_attribute(mat, "mturkOrder", path, len(names))
    pairs = []
    for a, attribute in enumerate(names):
        rows = matfiles.matrix(order[a], path, f"mturkOrder{{{a + 1}}}", min_columns=4)
        test = np.random.default_rng([seed, a]).uniform(size=len(rows)) < test_fraction
        for split, chosen in (("train", ~test), ("test", test)):
            pairs += label_rows(rows[chosen], path, f"mturkOrder{{{a + 1}}}", attribute, split,
                                image_names)
    logging.warning("%s: no official split; seeded %.0f%%/%.0f%% train/test split (seed %d); "
                    "image numbers read as 1-based like the rest of Zappos (UNVERIFIED)", path,
                    100 * (1 - test_fraction), 100 * test_fraction, seed)
    return pairs, [path], [(a, s) for a in names for s in ("train", "test")]


def run(argv=None):
    parser = cli.add_conversion_args(cli.JobArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--collection", required=True, choices=("zap50k1", "zap50k2", "lexi"))
    parser.add_argument("--images", default="original", choices=sorted(IMAGE_FOLDERS))
    parser.add_argument("--include_equal", action="store_true",
                        help="add mturkEqual pairs (t = 0.5) to the training splits")
    parser.add_argument("--test_fraction", type=cli.open_fraction, default=0.2,
                        help="lexi only: seeded fraction (0, 1) of each attribute's pairs")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0,
                        help="lexi split seed")
    args, beam_args = parser.parse_known_args(argv)
    data_dir = os.path.join(args.input_dir, "ut-zap50k-data")
    path_file = os.path.join(data_dir, "image-path.mat")
    image_names = matfiles.strings(matfiles.variable(matfiles.load_mat(path_file), "imagepath",
                                                     path_file))
    if args.collection == "zap50k1":
        pairs, sources, keys = zap50k1_pairs(data_dir, image_names, args.include_equal)
    elif args.collection == "zap50k2":
        pairs, sources, keys = zap50k2_pairs(data_dir, image_names, args.include_equal)
    else:
        pairs, sources, keys = lexi_pairs(args.input_dir, image_names, args.test_fraction,
                                          args.seed)
    root = os.path.join(args.input_dir, IMAGE_FOLDERS[args.images])
    tree = index_image_tree(root)
    used = sorted({p["id_a"] for p in pairs} | {p["id_b"] for p in pairs})
    # An image missing from the tree keeps its literal path: the reader then rejects it,
    # counted and listed in rejected.csv.
    images = [(TABLE, n, tree.get(normalise_path(n), os.path.join(root, n)), None) for n in used]
    fixed = sum(1 for n in used if normalise_path(n) in tree and
                tree[normalise_path(n)] != os.path.join(root, n))
    logging.warning("convert_zappos (%s): %d pairs over %d images; %d image paths matched only "
                    "after normalising folder names; %d not in %s", args.collection, len(pairs),
                    len(used), fixed, sum(1 for n in used if normalise_path(n) not in tree), root)
    attributes = list(dict.fromkeys(a for a, _ in keys))
    base_meta = dict(dataset=f"zappos50k-{args.collection}", attributes=attributes,
                     image_size=[args.image_size] * 2 if args.image_size else None,
                     image_format="jpeg", image_folder=args.images, strength_names=[],
                     sources={p: transforms.file_sha256(p) for p in [path_file] + sources},
                     command=cli.command_line("beam_jobs.convert_zappos", argv))
    return transforms.run_conversion(
        f"convert_zappos ({args.collection})", args.output_dir, beam_args,
        images=images, tables=[TABLE], splits={key: [TABLE] for key in keys},
        base_meta=base_meta, source="zappos50k", image_size=args.image_size,
        num_shards=args.num_shards, max_rejected_fraction=args.max_rejected_fraction,
        make_pairs=lambda p: p | "Pairs" >> beam.Create(pairs))


if __name__ == "__main__":
    cli.main(run, "convert_zappos")
