"""The attributes of the embedded benchmark: how each maps latent strength to a render parameter.

Every latent strength y lies in [0, 1]. Global attributes act on the whole picture; local ones
only on the subject (the green object), while the distractor objects carry random values of the
same properties, so a ranker has to find the subject to judge them.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class AttributeSpec:
    name: str
    kind: str  # "global" or "local"
    flip_invariant: bool  # False when a horizontal flip changes the strength (e.g. tilt)
    scale: float  # typical spread of the measured strength; the simulated crowd judges diff/scale
    description: str


ATTRIBUTES = (
    AttributeSpec("brightness", "global", True, 0.30, "median luminance of the picture"),
    AttributeSpec("warmth", "global", True, 0.40, "red-versus-blue balance of the neutral pixels"),
    AttributeSpec("contrast", "global", True, 0.06, "inter-quartile range of luminance"),
    AttributeSpec("size", "local", True, 0.12, "square root of the subject's area / image side"),
    AttributeSpec("elongation", "local", True, 1.2, "aspect ratio of the subject (principal axes)"),
    AttributeSpec("pointy", "local", True, 0.12,
                  "radial kurtosis of the whitened subject: 4/3 for an ellipse, more with corners"),
    AttributeSpec("stripes", "local", True, 0.25, "strength of the stripes across the subject"),
    AttributeSpec("tilt", "local", False, 60.0,
                  "counter-clockwise angle of the subject's long axis in degrees; unreadable when "
                  "the subject is nearly round"),
)
ATTRIBUTE_NAMES = tuple(a.name for a in ATTRIBUTES)
BY_NAME = {a.name: a for a in ATTRIBUTES}
GLOBAL_COLUMNS = [i for i, a in enumerate(ATTRIBUTES) if a.kind == "global"]


def attribute_info():
    """Per-attribute facts written into metadata.json."""
    return {a.name: {"kind": a.kind, "flip_invariant": a.flip_invariant, "scale": a.scale,
                     "description": a.description} for a in ATTRIBUTES}
