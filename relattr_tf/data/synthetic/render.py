"""Procedural renderer of the embedded benchmark: a green subject among distractors on texture.

`render(y, rng, size)` draws one RGB image (float32 in [0, 1]) from a latent attribute vector y
(ordered as ATTRIBUTE_NAMES, each in [0, 1]) and nuisance factors drawn from `rng` (position,
background texture, distractor objects, lighting gradient, sensor noise). Shapes are
superellipses rendered at 2x and box-filtered, so edges are anti-aliased at every size.
"""
import dataclasses
import math

import numpy as np
from scipy import special

from relattr_tf.data.synthetic.attributes import ATTRIBUTE_NAMES

SUPERSAMPLE = 2
SUBJECT_OWNER = 9  # in a scene's "owner" map: -1 background, 0-2 distractors, 9 the subject
STRIPE_PERIOD = 0.0625  # of the image side: 4 px at 64 px
SUBJECT_RGB = (0.12, 0.85, 0.12)
# Distractor colours never have green as the dominant channel, so the subject stays findable.
DISTRACTOR_RGB = ((0.85, 0.15, 0.10), (0.15, 0.25, 0.85), (0.75, 0.10, 0.70),
                  (0.90, 0.50, 0.10), (0.30, 0.30, 0.30), (0.80, 0.80, 0.85))


@dataclasses.dataclass(frozen=True)
class Scenery:
    """The ranges a picture's background and light are drawn from (nuisance, never ranked)."""
    grey: tuple = (0.45, 0.55)  # background level
    texture_amplitude: tuple = (0.08, 0.12)
    tint: float = 0.0  # the background's red-blue tint is drawn from [-tint, tint]
    light: float = 0.08  # the lighting gradient's strength across the picture: [0, light]
    # None: the subject's centre keeps its reach (longer semi-axis + 2 px) from the border, so
    # it is never cut, and where it stands depends on its size and elongation. A fraction of
    # the side: the centre keeps that far from the border whatever the subject's shape, so
    # where it stands (the subject_cell label) tells nothing of its strengths.
    subject_margin: float = None


BENCHMARK_SCENERY = Scenery()
# Wider draws for the pretrain table: backgrounds whose level, tint and texture strength vary
# more than the global attributes do, so that labels about them ask the trunk to keep each
# region's level and colour balance (which the benchmark's narrow draws never ask for).
VARIED_SCENERY = Scenery(grey=(0.3, 0.7), texture_amplitude=(0.04, 0.16), tint=0.2, light=0.3,
                         subject_margin=0.15)
SCENERIES = {"benchmark": BENCHMARK_SCENERY, "varied": VARIED_SCENERY}


def superellipse_fill(n):
    """Area of |u/a|^n + |v/b|^n <= 1 divided by its bounding box area 4ab."""
    return math.exp(2 * special.gammaln(1 + 1 / n) - special.gammaln(1 + 2 / n))


def local_parameters(y, size):
    """Render parameters of the subject from its latent strengths (semi-axes in pixels)."""
    v = dict(zip(ATTRIBUTE_NAMES, y))
    radius = (0.07 + 0.08 * v["size"]) * size  # radius of the circle of equal area
    elongation = 1.0 + 1.5 * v["elongation"]
    exponent = 2.0 * (0.75 / 2.0) ** v["pointy"]  # 2: ellipse, 1: diamond, 0.75: star
    # Keep the area pi r^2 whatever the shape, so size does not leak into pointy or elongation.
    ab = math.pi * radius ** 2 / (4 * superellipse_fill(exponent))
    a, b = math.sqrt(ab * elongation), math.sqrt(ab / elongation)
    return dict(a=a, b=b, radius=radius, exponent=exponent, stripes=0.5 * v["stripes"],
                angle=math.radians(80.0 * v["tilt"]))


def _shape_mask(xx, yy, cx, cy, a, b, exponent, angle):
    """Inside test and along-axis coordinate of a rotated superellipse (y axis pointing up)."""
    dx, dy = xx - cx, -(yy - cy)
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    inside = np.abs(u / a) ** exponent + np.abs(v / b) ** exponent <= 1.0
    return inside, u


def _paint(canvas, xx, yy, size, colour, cx, cy, a, b, exponent, angle, stripes):
    """Paints one object; returns its inside mask (supersampled)."""
    inside, u = _shape_mask(xx, yy, cx, cy, a, b, exponent, angle)
    period = STRIPE_PERIOD * size * SUPERSAMPLE
    shade = 1.0 - stripes * (np.sin(2 * np.pi * u / period) > 0)
    canvas[inside] = np.asarray(colour)[None, :] * shade[inside][:, None]
    return inside


def render(y, rng, size=64, scene=None, scenery=BENCHMARK_SCENERY):
    """One image (size x size x 3, float32 in [0, 1]) for latent strengths y.

    A dict passed as `scene` receives what else is in the picture (see `scene_labels`): the
    texture's orientation and frequency, each distractor's colour index, shape exponent,
    stripe depth, radius, elongation, long axis' orientation and visible area, the subject's centre, and the light's direction and
    strength, and "owner": which object each supersampled pixel shows (-1 background,
    distractor index, SUBJECT_OWNER). Recording it draws nothing from `rng`, so the pictures are the same with or
    without it. `scenery` sets the background and light ranges; the benchmark's draws nothing
    for the tint, so its pictures are those rendered before scenery existed.
    """
    y = np.clip(np.asarray(y, np.float64), 0.0, 1.0)
    v = dict(zip(ATTRIBUTE_NAMES, y))
    big = size * SUPERSAMPLE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) + 0.5

    # Background: neutral grey with an oriented, two-frequency texture.
    grey = rng.uniform(*scenery.grey)
    amp = rng.uniform(*scenery.texture_amplitude)
    theta, freq = rng.uniform(0, np.pi), rng.uniform(3, 7) / big
    phase = rng.uniform(0, 2 * np.pi, size=2)
    tint = rng.uniform(-scenery.tint, scenery.tint) if scenery.tint else 0.0
    t = xx * math.cos(theta) + yy * math.sin(theta)
    t2 = -xx * math.sin(theta) + yy * math.cos(theta)
    texture = 0.6 * np.sin(2 * np.pi * freq * t + phase[0]) + 0.4 * np.sin(
        2 * np.pi * 2.3 * freq * t2 + phase[1])
    canvas = (grey + amp * texture)[..., None] * np.array([1 + tint, 1.0, 1 - tint], np.float32)
    scene = {} if scene is None else scene
    scene.update(texture_orientation=float(theta), texture_cycles=float(freq * big),
                 distractor_colours=[], distractors=[],
                 background_grey=float(_fraction(grey, scenery.grey)),
                 texture_amplitude=float(_fraction(amp, scenery.texture_amplitude)),
                 background_tint=float(_fraction(tint, (-scenery.tint, scenery.tint))))
    owner = np.full((big, big), -1, np.int8)  # which object each supersampled pixel shows

    # Distractors first, so the subject is never occluded.
    for index in range(rng.integers(1, 4)):
        d = local_parameters(rng.uniform(0, 1, len(ATTRIBUTE_NAMES)), size)
        cx, cy = rng.uniform(0, big, size=2)
        colour = int(rng.integers(len(DISTRACTOR_RGB)))
        angle = d["angle"] + rng.uniform(-1.0, 1.0)
        stripes = d["stripes"] * rng.integers(0, 2)
        scene["distractor_colours"].append(colour)
        scene["distractors"].append(dict(colour=colour, exponent=d["exponent"],
                                         stripes=float(stripes),
                                         radius=d["radius"] * 0.8 / size,
                                         elongation=float(d["a"] / d["b"]),
                                         orientation=float(angle % math.pi)))
        owner[_paint(canvas, xx, yy, size, DISTRACTOR_RGB[colour], cx, cy,
                     d["a"] * SUPERSAMPLE * 0.8, d["b"] * SUPERSAMPLE * 0.8, d["exponent"],
                     angle, stripes)] = index

    s = local_parameters(y, size)
    reach = min(max(s["a"], s["b"]) * SUPERSAMPLE + 2 * SUPERSAMPLE, big / 2)
    if scenery.subject_margin is not None:
        reach = scenery.subject_margin * big
    cx, cy = rng.uniform(reach, big - reach, size=2)
    scene["subject_centre"] = (float(cx / big), float(cy / big))  # (x, y) fractions
    colour = np.asarray(SUBJECT_RGB) + rng.uniform(-0.05, 0.05, size=3)
    # Counted before the subject is painted, so which distractor shows most never depends on
    # the subject.
    for index, d in enumerate(scene["distractors"]):
        d["visible_px"] = float(np.count_nonzero(owner == index)) / SUPERSAMPLE ** 2
    owner[_paint(canvas, xx, yy, size, colour, cx, cy, s["a"] * SUPERSAMPLE,
                 s["b"] * SUPERSAMPLE, s["exponent"], s["angle"], s["stripes"])] = SUBJECT_OWNER
    scene["owner"] = owner

    image = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))

    # Global attributes and lighting.
    contrast = 0.5 + 0.9 * v["contrast"]
    brightness = -0.18 + 0.36 * v["brightness"]
    warmth = -0.25 + 0.5 * v["warmth"]
    image = 0.5 + (image - 0.5) * contrast + brightness
    image = image * np.array([1 + warmth, 1.0, 1 - warmth])
    gy, gx = np.mgrid[0:size, 0:size] / size - 0.5
    direction, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0, scenery.light)
    scene.update(light_direction=float(direction), light_strength=float(strength))
    light = 1.0 + strength * (gx * math.cos(direction) + gy * math.sin(direction))
    image = image * light[..., None] + rng.normal(0, 0.012, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


# The pretraining labels: what is in the picture, never how much of an attribute it shows. Each
# reads the nuisance draws (position, texture, distractors), none the subject's strengths; the
# docs (docs/models/pretrained_trunk.md) say per head why it cannot leak a ranked attribute.
GRID = 3  # subject position: which cell of a GRID x GRID grid holds its centre
ORIENTATION_BINS = 6  # background texture orientation, binned over [0, pi)
FINE_TEXTURE_CYCLES = 5.0  # texture cycles per image side: 3-7, "fine" from 5
# The main distractor (the one showing most pixels): its shape and stripes split at the middle
# of the range they are drawn from, its size near its median.
POINTED_EXPONENT = 2.0 * (0.75 / 2.0) ** 0.5  # superellipse exponent of pointy = 0.5
STRIPED_DEPTH = 0.1  # stripe depth 0 (plain) to 0.5
# Large: an equal-area radius (of the image side) above that of size = 2/3. The main distractor
# is the larger of several more often than not; this splits it near its median.
LARGE_RADIUS = 0.8 * (0.07 + 0.08 * 2 / 3)
LABEL_HEADS = (
    dict(name="distractor_count", kind="softmax", size=3),  # 1, 2 or 3 distractors
    dict(name="subject_cell", kind="softmax", size=GRID * GRID),
    dict(name="texture_orientation", kind="softmax", size=ORIENTATION_BINS),
    dict(name="texture_fine", kind="softmax", size=2),
    dict(name="distractor_colours", kind="sigmoid", size=len(DISTRACTOR_RGB)),  # which appear
    dict(name="main_distractor_colour", kind="softmax", size=len(DISTRACTOR_RGB)),
    dict(name="main_distractor_pointed", kind="softmax", size=2),
    dict(name="main_distractor_striped", kind="softmax", size=2),
    dict(name="main_distractor_large", kind="softmax", size=2),
    # The side the light comes from (the brighter side: right, bottom, left, top). It asks
    # for each region's level, not only for edges and hues.
    dict(name="light_side", kind="softmax", size=4),
)


def main_distractor(scene):
    """The distractor that shows the most pixels among the distractors (the subject, painted
    last, left out; the first of equals)."""
    return max(scene["distractors"], key=lambda d: d["visible_px"])


# Heads about the varied scenery's background (thirds of each draw's range; the texture's
# strength halved). Each reads one nuisance draw made before the subject and apart from it.
SCENERY_HEADS = (
    dict(name="background_level", kind="softmax", size=3),
    dict(name="background_tint", kind="softmax", size=3),  # blue, neutral, red
    dict(name="texture_strong", kind="softmax", size=2),
)


# Heads about the main distractor's outline, which the top of the trunk otherwise never needs
# (without them the subject's size and tilt are read inside the trunk and lost at its top). A
# distractor's shape is drawn from its own uniform strengths, never the subject's.
ELONGATED = 1.75  # length over width, drawn from 1 to 2.5: split at the middle
ORIENTATION_QUARTERS = 4  # the long axis' orientation, binned over [0, pi)
SHAPE_HEADS = (
    dict(name="main_distractor_elongated", kind="softmax", size=2),
    dict(name="main_distractor_orientation", kind="softmax", size=ORIENTATION_QUARTERS),
)


def label_heads(scenery=BENCHMARK_SCENERY):
    """The pretrain table's heads for pictures drawn with `scenery` (the benchmark's keeps the
    heads it was first drawn with)."""
    if scenery == BENCHMARK_SCENERY:
        return LABEL_HEADS
    return LABEL_HEADS + SCENERY_HEADS + SHAPE_HEADS


def _thirds(fraction):
    return min(int(fraction * 3), 2)


def scene_labels(scene, heads=LABEL_HEADS):
    """The label vector of a rendered scene, laid out as `heads`: one class index per
    softmax head, one 0/1 column per sigmoid head's class."""
    x, y = scene["subject_centre"]
    main = main_distractor(scene)
    colours = np.zeros(len(DISTRACTOR_RGB))
    colours[scene["distractor_colours"]] = 1.0
    values = dict(
        distractor_count=len(scene["distractor_colours"]) - 1,
        subject_cell=min(int(y * GRID), GRID - 1) * GRID + min(int(x * GRID), GRID - 1),
        texture_orientation=min(int(scene["texture_orientation"] / np.pi * ORIENTATION_BINS),
                                ORIENTATION_BINS - 1),
        texture_fine=int(scene["texture_cycles"] >= FINE_TEXTURE_CYCLES),
        distractor_colours=colours,
        main_distractor_colour=main["colour"],
        main_distractor_pointed=int(main["exponent"] < POINTED_EXPONENT),
        main_distractor_striped=int(main["stripes"] >= STRIPED_DEPTH),
        main_distractor_large=int(main["radius"] >= LARGE_RADIUS),
        light_side=int((scene["light_direction"] + np.pi / 4) % (2 * np.pi) // (np.pi / 2)),
        background_level=_thirds(scene["background_grey"]),
        background_tint=_thirds(scene["background_tint"]),
        texture_strong=int(scene["texture_amplitude"] >= 0.5),
        main_distractor_elongated=int(main["elongation"] >= ELONGATED),
        main_distractor_orientation=min(int(main["orientation"] / np.pi *
                                            ORIENTATION_QUARTERS), ORIENTATION_QUARTERS - 1))
    return np.concatenate([np.atleast_1d(values[h["name"]]).astype(np.float64) for h in heads])


def subject_coverage(scene):
    """uint8 (size, size, 1): how much of each pixel the subject covers (0-255), from a
    rendered scene's owner map."""
    owner = scene["owner"]
    size = owner.shape[0] // SUPERSAMPLE
    cover = (owner == SUBJECT_OWNER).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(
        axis=(1, 3))
    return np.round(cover * 255).astype(np.uint8)[..., None]


def _fraction(value, bounds):
    """Where value lies in [lo, hi], 0 to 1 (0.5 for an empty range)."""
    lo, hi = bounds
    return (value - lo) / (hi - lo) if hi > lo else 0.5


def to_uint8(image):
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
