"""ATTIC's control net and its slots as a run leaves them (<model_dir>/control/), saved and
loaded here only, and the pairs they draw through the frozen generator.

    control.keras   the control net q -> (y^A, y^B)
    slots.npy       the T draws of q (T, 2 z) the run trained on
    control.json    the attribute, the generator's attribute and directory, the slot count
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf

from relattr_tf.models import control as control_lib

CONTROL_DIR = "control"
CONTROL_FILE = "control.keras"
SLOTS_FILE = "slots.npy"


def save_control(control, slots, directory, info):
    tf.io.gfile.makedirs(directory)
    control.save(os.path.join(directory, CONTROL_FILE))
    with tf.io.gfile.GFile(os.path.join(directory, SLOTS_FILE), "wb") as f:
        np.save(f, np.asarray(slots, np.float32))
    with tf.io.gfile.GFile(os.path.join(directory, "control.json"), "w") as f:
        f.write(json.dumps(dict(info, slots=int(len(slots))), indent=2))


def load_control(model_dir):
    """(control net, slots (T, 2 z)) of a finished ATTIC model_dir."""
    directory = os.path.join(model_dir, CONTROL_DIR)
    path = os.path.join(directory, CONTROL_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no control net here (an ATTIC run writes it when it "
                                f"finishes)")
    control = keras.saving.load_model(path, safe_mode=True)
    with tf.io.gfile.GFile(os.path.join(directory, SLOTS_FILE), "rb") as f:
        slots = np.load(f)
    return control, slots


def generate_pairs(control, decoder, slots, image_size, training=False, batch_size=128):
    """Every slot's pair: (images_a, images_b) float [0, 1] (T, S, S, 3) and (y_a, y_b) raw.
    training=True normalises with the statistics of all the slots at once, as the control's
    BatchNorm did while it trained (its moving averages lag far behind a short phase); it
    updates those averages, so pass a loaded copy."""
    if training:  # one batch: the BatchNorm statistics of all the slots
        batch_size = len(slots)
    outs = {k: [] for k in ("a", "b", "y_a", "y_b")}
    for start in range(0, len(slots), batch_size):
        q = tf.constant(slots[start:start + batch_size], tf.float32)
        y_a, y_b = control(q, training=training)
        z_a, z_b = control_lib.split_latents(q)
        for key, y, z in (("a", y_a, z_a), ("b", y_b, z_b)):
            mean, _ = decoder([y, z], training=False)
            image = (tf.cast(mean, tf.float32) + 1.0) / 2.0
            if image.shape[1] != image_size:
                image = tf.image.resize(image, (image_size, image_size))
            outs[key].append(np.clip(image.numpy(), 0.0, 1.0))
            outs[f"y_{key}"].append(np.asarray(y, np.float64))
    out = {k: np.concatenate(v) for k, v in outs.items()}
    return (out["a"], out["b"]), (out["y_a"], out["y_b"])
