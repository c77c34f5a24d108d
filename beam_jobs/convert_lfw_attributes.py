"""Converts LFW's attribute scores (Kumar et al., lfw_attributes.txt) into an image table.

    python -m beam_jobs.convert_lfw_attributes --input_dir=LFW --output_dir=data/lfw_attributes
    python -m beam_jobs.convert_lfw_attributes --attributes_file=lfw_attributes.txt \
        --image_dir=lfw-deepfunneled --output_dir=data/lfw_attributes --image_size=128

LFW holds lfw_attributes.txt and the image tree lfw/<Person_Name>/<Person_Name>_0001.jpg.
The file is tab-separated: line 1 a `#` comment, line 2 the header `#<TAB>person<TAB>imagenum
<TAB>Male<TAB>Asian ...` (its first column is an extra `#`, so the names sit one column to the
right of the values), then one line per image: `Aaron Eckhart<TAB>1<TAB>1.568346 ...`. Each
image is stored once in one image table (--table, default generator) with its score vector
(`strength_names` = the attribute columns in file order) and id `Aaron_Eckhart_0001`; there are
no pairs. A row with the wrong number of columns, a non-numeric score or an unreadable image
is rejected: counted and listed in rejected.csv.
"""
import argparse
import logging
import math
import os

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_jobs import cli, transforms
from relattr_tf.data import schema

ATTRIBUTES_FILE = "lfw_attributes.txt"
IMAGE_FOLDER = "lfw"
DOCUMENTED_COLUMNS = 73
HEADER = "#<TAB>person<TAB>imagenum<TAB><attribute>..."


def _decode(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _header_fields(line):
    """The column names of a header line (the leading `#` column dropped), or None."""
    fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
    if fields and fields[0] == "#":
        fields = fields[1:]
    if len(fields) >= 3 and fields[0] == "person" and fields[1] == "imagenum":
        return fields
    return None


def read_header(lines, path):
    """(attribute names, index of the header line); DataError when there is no documented
    header on line 2 (or on line 1 of a file without the comment line)."""
    for index in range(min(2, len(lines))):
        fields = _header_fields(lines[index])
        if fields:
            names = fields[2:]
            if any(not n for n in names) or len(set(names)) != len(names):
                raise schema.DataError(f"{path}: line {index + 1}: empty or repeated attribute "
                                       f"names in the header")
            return names, index
    got = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
    raise schema.DataError(f"{path}: not an LFW attribute file: line 2 should be the header "
                           f"{HEADER!r} after a '#' comment line, got {got.rstrip()[:60]!r}")


def image_id(person, number):
    return f"{person.replace(' ', '_')}_{number:04d}"


def parse_row(line, names):
    """(person, imagenum, scores) of a data line; ValueError with the reason when malformed."""
    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != len(names) + 2:
        raise ValueError(f"{len(fields)} columns, expected {len(names) + 2} (person, imagenum "
                         f"and {len(names)} scores)")
    person = fields[0].strip()
    if not person:
        raise ValueError("empty person name")
    try:
        number = int(fields[1])
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"imagenum {fields[1]!r} is not a positive integer")
    scores = []
    for name, text in zip(names, fields[2:]):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"non-numeric score {text.strip()!r} in column {name!r}")
        scores.append(value)
    return person, number, np.asarray(scores, np.float32)


def read_scores(path):
    """Attribute names, accepted rows [(image id, person folder, scores)], rejected rows
    [(path:line, reason)] and the number of data rows."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        lines = _decode(f.read()).splitlines()
    names, header = read_header(lines, path)
    rows, rejected, seen, total = [], [], {}, 0
    for number, line in enumerate(lines[header + 1:], start=header + 2):
        if not line.strip():
            continue
        total += 1
        where = f"{path}:{number}"
        try:
            person, imagenum, scores = parse_row(line, names)
        except ValueError as e:
            rejected.append((where, str(e)))
            continue
        identity = image_id(person, imagenum)
        if identity in seen:
            rejected.append((where, f"repeats {identity} of line {seen[identity]}"))
            continue
        seen[identity] = number
        rows.append((identity, person.replace(" ", "_"), scores))
    return names, rows, rejected, total


def run(argv=None):
    parser = cli.add_conversion_args(cli.JobArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter),
        input_required=False)
    parser.add_argument("--attributes_file", default=None,
                        help=f"the score file (default: INPUT_DIR/{ATTRIBUTES_FILE})")
    parser.add_argument("--image_dir", default=None,
                        help=f"the LFW image tree (default: INPUT_DIR/{IMAGE_FOLDER})")
    parser.add_argument("--table", default="generator", help="name of the image table")
    args, beam_args = parser.parse_known_args(argv)
    if not args.input_dir and not (args.attributes_file and args.image_dir):
        raise SystemExit("convert_lfw_attributes: needs --input_dir (the folder holding "
                         f"{ATTRIBUTES_FILE} and {IMAGE_FOLDER}/), or both --attributes_file "
                         "and --image_dir")
    if not args.table or transforms.safe_name(args.table) != args.table:
        raise SystemExit(f"convert_lfw_attributes: --table={args.table!r}: use letters, digits, "
                         f"'_', '.' and '-'")
    path = args.attributes_file or os.path.join(args.input_dir, ATTRIBUTES_FILE)
    image_dir = args.image_dir or os.path.join(args.input_dir, IMAGE_FOLDER)
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path}: no such file (the LFW attribute scores)")
    names, rows, rejected_rows, total = read_scores(path)
    if len(names) != DOCUMENTED_COLUMNS:
        logging.warning("%s: %d attribute columns, the documented file has %d", path,
                        len(names), DOCUMENTED_COLUMNS)
    logging.warning("%s: %d rows, %d rejected before reading images; images from %s", path,
                    total, len(rejected_rows), image_dir)
    images = [(args.table, identity, schema.join(image_dir, f"{folder}/{identity}.jpg"), scores)
              for identity, folder, scores in rows]
    base_meta = dict(dataset="lfw_attributes", attributes=[], image_format="jpeg",
                     image_size=[args.image_size] * 2 if args.image_size else None,
                     strength_names=names, strengths="attribute classifier scores of Kumar "
                     "et al. (unbounded reals, higher = more)", rows=total,
                     sources={path: transforms.file_sha256(path)},
                     command=cli.command_line("beam_jobs.convert_lfw_attributes", argv))
    return transforms.run_conversion(
        "convert_lfw_attributes", args.output_dir, beam_args, images=images,
        tables=[args.table], base_meta=base_meta, image_size=args.image_size,
        num_shards=args.num_shards, max_rejected_fraction=args.max_rejected_fraction,
        rejected_rows=rejected_rows, unit="rows")


if __name__ == "__main__":
    cli.main(run, "convert_lfw_attributes")
