"""Small stand-ins for ATTIC's tests: a generator artifact with an untrained decoder (its
shapes, statistics and files as training writes them), and a tiny ATTIC config."""
import os

import numpy as np

from relattr_tf.config import AtticConfig, Config, DataConfig, TrainConfig

ATTRIBUTES = ("brightness", "tilt")  # conftest's tiny benchmark


def make_generator(directory, attributes=ATTRIBUTES, image_size=32, z_size=4, seed=0,
                   data_dir=None):
    """An untrained Attribute2Image decoder saved as the generator artifact; returns it. With
    data_dir, the parent folder gets the config.json of a CVAE run on its generator table (the
    images Real+ draws pseudo pairs from)."""
    from relattr_tf.models import cvae
    from relattr_tf.artifacts.generator import save_generator
    decoder = cvae.build_decoder(image_size, len(attributes), z_size, width=0.0625, seed=seed)
    count = len(attributes)
    statistics = dict(names=list(attributes), mean=[0.5] * count, std=[0.2] * count,
                      min=[0.0] * count, max=[1.0] * count, images=100)
    cvae.set_strength_statistics(decoder, np.asarray(statistics["mean"], np.float32),
                                 np.asarray(statistics["std"], np.float32))
    save_generator(decoder, str(directory), statistics, z_size, image_size)
    if data_dir:
        from relattr_tf.artifacts.run_config import CONFIG_FILE
        from relattr_tf.config import GeneratorConfig
        config = Config(model="cvae", data=DataConfig(data_dir=str(data_dir)),
                        family=GeneratorConfig(image_table="generator", z_size=z_size))
        with open(os.path.join(os.path.dirname(str(directory).rstrip("/")), CONFIG_FILE),
                  "w") as f:
            f.write(config.to_json())
    return str(directory)


def make_layered_generator(directory, attributes=ATTRIBUTES, image_size=32, z_sizes=(4, 2),
                           seed=0):
    """An untrained layered Attribute2Image (its background reading y) saved as the generator
    artifact, as training.layered_cvae exports it; returns it."""
    from relattr_tf.models import cvae, layered_cvae
    from relattr_tf.artifacts.generator import save_generator
    count = len(attributes)
    foreground = layered_cvae.build_foreground_decoder(image_size, count, z_sizes[0], 0.0625,
                                                       seed=seed)
    background = layered_cvae.build_background_decoder(image_size, z_sizes[1], 0.0625,
                                                       seed=seed, y_size=count)
    statistics = dict(names=list(attributes), mean=[0.5] * count, std=[0.2] * count,
                      min=[0.0] * count, max=[1.0] * count, images=100)
    for part in (foreground, background):
        cvae.set_strength_statistics(part, np.asarray(statistics["mean"], np.float32),
                                     np.asarray(statistics["std"], np.float32))
    save_generator(layered_cvae.build_layered_decoder(foreground, background), str(directory),
                   statistics, sum(z_sizes), image_size,
                   extra=dict(model="layered_cvae", z_fg_size=z_sizes[0], z_bg_size=z_sizes[1],
                              masked=True, background_y=True))
    return str(directory)


def attic_config(generator_dir, data_dir="unused", **values):
    """A tiny ATTIC config: a crop-only DeepSTN at 1/16 width against a small control net."""
    family = AtticConfig(ranker_model="deepstn_crop", generator_dir=generator_dir, width=0.0625,
                         slots=16, generated_batch=4, control_units=16, control_head_units=8,
                         trunk_lr=0.05, head_lr=0.05, control_lr=0.05, attribute="brightness")
    train = TrainConfig(optimizer="sgd", momentum=0.0, weight_decay=5e-3, lr_drop_epochs=(),
                        seed=0)
    config = Config(model="attic", data=DataConfig(data_dir=data_dir, image_size=32),
                    train=train, family=family)
    return config.with_values(**values) if values else config
