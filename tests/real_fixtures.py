"""Tiny copies of the real data sets in their documented on-disk formats (see the converters)."""
import os

import h5py
import numpy as np
import scipy.io
from PIL import Image


def jpeg(path, seed, size=(40, 32)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


def cell(strings, shape):
    out = np.empty(shape, dtype=object)
    for index, s in zip(np.ndindex(shape), strings):
        out[index] = s
    return out


def make_pubfig(root, bad_image=None):
    """relative_attributes/pubfig: 3 classes x 4 images (2 train each), 2 attributes."""
    names = [f"{c}_{k}.jpg" for c in ("Ann", "Bob", "Cid") for k in range(1, 5)]
    classes = np.repeat([1, 2, 3], 4).astype(np.uint8).reshape(-1, 1)  # N x 1, 1-based
    training = np.tile([1, 1, 0, 0], 3).astype(np.uint8).reshape(-1, 1)
    ordering = np.array([[3, 2, 1],    # Smiling: Ann > Bob > Cid
                         [1, 2, 2]],   # Young: Bob and Cid tied
                        np.uint8)
    os.makedirs(root, exist_ok=True)
    scipy.io.savemat(os.path.join(root, "data.mat"), {
        "im_names": cell(names, (1, len(names))), "class_labels": classes,
        "used_for_training": training, "class_names": cell(["Ann", "Bob", "Cid"], (1, 3)),
        "attribute_names": cell(["Smiling", "Young"], (1, 2)), "relative_ordering": ordering,
        "feat": np.zeros((len(names), 4))})
    for k, name in enumerate(names):
        jpeg(os.path.join(root, "images", name), k)
    if bad_image:
        with open(os.path.join(root, "images", bad_image), "wb") as f:
            f.write(b"\xff\xd8 not a jpeg")
    return names


LFW_VOTES = [[0, 3, 1, 1],   # A more
             [0, 1, 4, 0],   # B more
             [0, 0, 1, 4],   # equal
             [0, 2, 2, 1]]   # split vote: the earlier column (A more), as the reference loader


def make_lfw10(root, attributes=("smile", "young")):
    for n in range(1, 9):
        jpeg(os.path.join(root, "images", f"{n}.jpg"), n, size=(32, 32))
    for attribute in attributes:
        for split, offset in (("train", 0), ("test", 4)):
            compare = cell([], (4, 3))
            for r in range(4):
                compare[r, 0] = f"p{r}"
                compare[r, 1] = f"{offset + r + 1}.jpg"
                compare[r, 2] = f"{offset + (r + 1) % 4 + 1}.jpg"
            os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
            scipy.io.savemat(os.path.join(root, "annotations", f"{attribute}{split}.mat"), {
                "images_compare": compare,
                "attribute_strengths": np.array(LFW_VOTES, np.uint8)})


ZAPPOS_PATHS = ["Shoes/Oxfords/Bostonian/100627.72.jpg",
                "Shoes/Oxfords/Neil M./200.1.jpg",          # folder lost its trailing dot
                "Boots/Ankle/Levi's Shoes/300.5.jpg",        # folder is "Levi's&#174; Shoes"
                "Sandals/Flat/Teva/400.2.jpg",
                "Sandals/Flat/Teva/500.3.jpg",
                "Slippers/Slipper Heels/Missing/600.4.jpg"]  # no such file: rejected
TREE_PATHS = ["Shoes/Oxfords/Bostonian/100627.72.jpg", "Shoes/Oxfords/Neil M/200.1.jpg",
              "Boots/Ankle/Levi's&#174; Shoes/300.5.jpg", "Sandals/Flat/Teva/400.2.jpg",
              "Sandals/Flat/Teva/500.3.jpg"]


def zappos_rows(attribute_id, count, seed):
    """N x 6 rows: A, B (1-based), attribute id, label 1/2, confidence 1..3, agreement."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        a, b = rng.choice(5, 2, replace=False) + 1
        rows.append([a, b, attribute_id, rng.integers(1, 3), rng.uniform(1, 3), 0.8])
    return np.array(rows, np.float64)


def make_zappos(root, with_missing_image_pair=True):
    data = os.path.join(root, "ut-zap50k-data")
    os.makedirs(data, exist_ok=True)
    for k, path in enumerate(TREE_PATHS):
        jpeg(os.path.join(root, "ut-zap50k-images", path), 100 + k)
    scipy.io.savemat(os.path.join(data, "image-path.mat"),
                     {"imagepath": cell(ZAPPOS_PATHS, (len(ZAPPOS_PATHS), 1))})
    order = [zappos_rows(a + 1, 12, a) for a in range(4)]
    order[0][0] = [1, 2, 1, 1, 1.0, 1.0]  # a known pair: image 1 shows more than image 2
    if with_missing_image_pair:
        order[1][0] = [6, 1, 2, 2, 2.0, 0.6]
    equal = [np.array([[3, 4, a + 1, 3, 2.0, 0.6]]) for a in range(4)]
    hard = [zappos_rows(a + 1, 5, 10 + a) for a in range(4)]
    scipy.io.savemat(os.path.join(data, "zappos-labels.mat"), {
        "mturkOrder": cell(order, (1, 4)), "mturkEqual": cell(equal, (1, 4))})
    scipy.io.savemat(os.path.join(data, "zappos-labels-fg.mat"),
                     {"mturkHard": cell(hard, (1, 4))})
    train, test = [], []
    for a in range(4):
        splits = [np.random.default_rng(a * 10 + s).permutation(12) + 1 for s in range(10)]
        train.append(cell([p[:8].reshape(1, -1).astype(np.uint8) for p in splits], (1, 10)))
        test.append(cell([p[8:].reshape(-1, 1).astype(np.float64) for p in splits], (1, 10)))
    scipy.io.savemat(os.path.join(data, "train-test-splits.mat"), {
        "trainIndexAll": cell(train, (1, 4)), "testIndexAll": cell(test, (1, 4))})
    return order


LEXI_NAMES = ["casual", "comfort", "simple", "sporty", "colorful", "durable", "supportive",
              "bold", "sleek", "open"]


def make_lexi_v73(path, rows_per_attribute=20):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte user block, matrices
    transposed, cells as object references into #refs#, strings as uint16 columns."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    matrices = [zappos_rows(a + 1, rows_per_attribute, 50 + a)[:, :4] for a in range(10)]
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        order = f.create_dataset("mturkOrder", (10, 1), dtype=h5py.ref_dtype)
        names = f.create_dataset("attrNames", (10, 1), dtype=h5py.ref_dtype)
        for a in range(10):
            m = refs.create_dataset(f"m{a}", data=matrices[a].T)  # N x C -> (C, N)
            m.attrs["MATLAB_class"] = np.bytes_("double")
            order[a, 0] = m.ref
            s = refs.create_dataset(f"s{a}", data=np.array(
                [[ord(c)] for c in LEXI_NAMES[a]], np.uint16))  # 1 x L char -> (L, 1)
            s.attrs["MATLAB_class"] = np.bytes_("char")
            names[a, 0] = s.ref
        order.attrs["MATLAB_class"] = np.bytes_("cell")
        names.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(124, b" ") + b"\x00\x02IM")
    return matrices


LFW_ATTRIBUTE_NAMES = ["Male", "Asian", "Black Hair", "Mouth Wide Open", "Smiling"]


def make_lfw_attributes(root):
    """LFW/lfw_attributes.txt in its real layout (a `#` comment line, then a header whose first
    column is an extra `#`, tab-separated, person names with spaces) and LFW/lfw/<Person>/
    <Person>_<NNNN>.jpg. Rows: three good ones (one person's name has three words), one whose
    image is missing, one with a column short and one with a non-numeric score.
    Returns {image id: scores} of the good rows."""
    good = {("Aaron Eckhart", 1): [1.568346, -1.889043, 0.5, -0.25, 2.0],
            ("Aaron Eckhart", 2): [1.25, -1.5, 0.125, 0.75, -2.0],
            ("Mary Jo Van Dyke", 13): [-2.5, 0.375, -0.75, 1.5, 0.0625]}
    rows = [f"{person}\t{number}\t" + "\t".join(f"{v:f}" for v in scores)
            for (person, number), scores in good.items()]
    rows.insert(1, "Zed Missing\t1\t" + "\t".join(["0.5"] * 5))  # no image file
    rows.append("Short Row\t1\t" + "\t".join(["0.5"] * 4))  # a column short
    rows.append("Not Numeric\t2\t0.5\tabc\t0.5\t0.5\t0.5")
    header = "\t".join(["#", "person", "imagenum"] + LFW_ATTRIBUTE_NAMES)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "lfw_attributes.txt"), "w") as f:
        f.write("# Attribute scores of LFW images (test fixture)\n" + header + "\n"
                + "\n".join(rows) + "\n")
    out = {}
    for k, ((person, number), scores) in enumerate(good.items()):
        folder = person.replace(" ", "_")
        image_id = f"{folder}_{number:04d}"
        jpeg(os.path.join(root, "lfw", folder, f"{image_id}.jpg"), 200 + k, size=(24, 24))
        out[image_id] = scores
    for person, number in (("Short Row", 1), ("Not Numeric", 2)):  # images exist, rows do not
        folder = person.replace(" ", "_")
        jpeg(os.path.join(root, "lfw", folder, f"{folder}_{number:04d}.jpg"), 300, size=(24, 24))
    return out


def make_lfw_attribute_faces(root, count=40, seed=0):
    """LFW/lfw_attributes.txt (the real layout, as make_lfw_attributes) with `count` good rows
    over a few people, and their JPEGs. Returns {image id: scores}."""
    rng = np.random.default_rng(seed)
    header = "\t".join(["#", "person", "imagenum"] + LFW_ATTRIBUTE_NAMES)
    rows, out = [], {}
    for k in range(count):
        person, number = f"Person {'ABCDE'[k % 5]} Example", k // 5 + 1
        scores = rng.normal(size=len(LFW_ATTRIBUTE_NAMES)).round(6)
        rows.append(f"{person}\t{number}\t" + "\t".join(f"{v:f}" for v in scores))
        folder = person.replace(" ", "_")
        image_id = f"{folder}_{number:04d}"
        jpeg(os.path.join(root, "lfw", folder, f"{image_id}.jpg"), 400 + k, size=(40, 40))
        out[image_id] = scores.tolist()
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "lfw_attributes.txt"), "w") as f:
        f.write("# Attribute scores of LFW images (test fixture)\n" + header + "\n"
                + "\n".join(rows) + "\n")
    return out
