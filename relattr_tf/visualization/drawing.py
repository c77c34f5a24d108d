"""`python -m relattr_tf.visualize`'s work: one --kind drawn, saved and summarised."""
import json
import os

from relattr_tf.artifacts.pair_model import load_trained_parts
from relattr_tf.artifacts.run_config import load_run_config
from relattr_tf.training import callbacks
from relattr_tf.visualization import generated_pairs, kinds, sheets


def draw(kind, options, out_dir):
    """Draws `kind` for options.model_dir; writes the PNGs, <kind>.json and the TensorBoard
    images; returns (png paths, figures)."""
    if kind == "pairs":
        drawn, figures = generated_pairs.attic_pairs(options)
    elif kind in ("sweep", "generators"):
        config = load_run_config(options.model_dir)
        if config.family_name != "generator":
            raise ValueError(f"{options.model_dir}: --kind={kind} needs a CVAE model_dir, this "
                             f"holds a {config.model} model")
        drawn, figures = getattr(kinds, kind)(config, options)
    else:
        config, parts = load_trained_parts(options.model_dir)
        drawn, figures = getattr(kinds, kind)(config, parts, options)
    paths = [sheets.save(pixels, out_dir, name) for name, (pixels, _) in drawn.items()]
    with open(os.path.join(out_dir, f"{kind}.json"), "w") as f:
        f.write(json.dumps(figures, indent=2, sort_keys=True))
    epoch = callbacks.checkpoint_epoch(os.path.join(options.model_dir, "checkpoints"))
    sheets.to_tensorboard(os.path.join(options.model_dir, "tensorboard", "visualize"),
                          {f"{kind}/{name}": image for name, image in drawn.items()}, epoch)
    return paths, figures


def summary_line(kind, figures):
    if "mass_in_box" in figures:
        return (f"{kind}: {100 * figures['mass_in_box']:.1f}% of the mass inside the subject's "
                f"box, which covers {100 * figures['box_area']:.1f}% of the image "
                f"({figures['mass_over_area']:.2f}x uniform), over {figures['images_with_box']} "
                f"images")
    if "mean_iou" in figures:
        return (f"boxes: mean IoU {figures['mean_iou']:.2f}, IoU >= 0.5 on "
                f"{100 * figures['iou_at_least_half']:.1f}%, subject centre inside on "
                f"{100 * figures['contains_centre']:.1f}% of {figures['images']} images")
    if kind == "generators":
        return "generators: real images, then " + ", ".join(
            f"{v['generator']} ({k})" for k, v in figures.items())
    if kind == "sweep":
        return "sweep: " + "; ".join(
            f"{name} Spearman {v['spearman_within_sweep']:.2f} (requested vs measured)"
            for name, v in figures.items()) if figures else "sweep: written"
    return f"{kind}: {figures.get('note', 'written')}" if kind != "pairs" else "pairs: written"
