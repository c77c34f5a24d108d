"""Evaluates a trained model directory on a data directory split.

    python -m relattr_tf.evaluate --model_dir=runs/quickstart --data_dir=data/synthetic \
        --attribute=brightness --split=test
    python -m relattr_tf.evaluate --model_dir=runs/all --data_dir=DIR --attribute=all

The command knows the model family from the model directory's saved configuration: a CVAE
(generator) directory gets the generator's figures (eval_generator.json), a pretraining one the
held-out accuracy and linear probe (eval_pretrain.json). For pair models it prints a one-line
summary and writes eval_<split>.json into the model directory; with
--attribute=all (model_dir/<attribute> per attribute) it also writes results_<split>.md / .csv.
Each test image goes through the network's trunk once (score and feature models);
--method=pairwise runs both images of every pair instead.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags

from relattr_tf import cli

flags.DEFINE_string("model_dir", None, "Trained model directory (holds export/).")
flags.DEFINE_string("data_dir", None, "Data directory; default: the one it was trained on.")
flags.DEFINE_string("attribute", None, "Attribute, or 'all'; default: the trained one.")
flags.DEFINE_list("split", ["test"], "Split(s) to evaluate.")
flags.DEFINE_integer("batch_size", 64, "Images or pairs per batch.", lower_bound=1)
flags.DEFINE_integer("image_memory_mb", 2048, "Keep decoded test images in memory up to this "
                     "size.", lower_bound=1)
flags.DEFINE_enum("method", "auto", ["auto", "pairwise"], "auto: each image through the trunk "
                  "once where the model allows it; pairwise: both images of every pair.")
flags.DEFINE_boolean("skip_corrupt", False, "Skip unreadable records (logged).")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def evaluate(model_dir, **overrides):
    """Results of the model in model_dir, with data settings overridden; prints a line each."""
    from relattr_tf.artifacts.run_config import load_run_config
    from relattr_tf.training import task
    config = load_run_config(model_dir).with_values(**overrides)
    model_task = task.make_task(config)
    results = model_task.evaluate(model_dir, batch_size=FLAGS.batch_size, method=FLAGS.method)
    for name, result in results.items():
        print(model_task.summary_line(name, result), flush=True)
    return results


def main(argv):
    cli.no_arguments(argv)
    import tensorflow as tf

    from relattr_tf.artifacts.run_config import load_run_config
    from relattr_tf.data import schema
    from relattr_tf.evaluation import report
    overrides = dict(skip_corrupt=FLAGS.skip_corrupt, image_memory_mb=FLAGS.image_memory_mb)
    if FLAGS.data_dir:
        overrides["data_dir"] = FLAGS.data_dir
    if tf.io.gfile.exists(os.path.join(FLAGS.model_dir, "config.json")) and \
            load_run_config(FLAGS.model_dir).family_name != "ranker":
        if FLAGS.attribute:
            raise app.UsageError("--attribute is for pair models; this model_dir holds a "
                                 f"{load_run_config(FLAGS.model_dir).model} model")
        evaluate(FLAGS.model_dir, **overrides)  # single-image models: no splits, no attribute
        return
    overrides["eval_split"] = tuple(FLAGS.split)
    if FLAGS.attribute != "all":
        if FLAGS.attribute:
            overrides["attribute"] = FLAGS.attribute
        evaluate(FLAGS.model_dir, **overrides)
        return
    if not FLAGS.data_dir:
        raise app.UsageError("--attribute=all needs --data_dir")
    rows = {split: [] for split in FLAGS.split}
    for attribute in schema.read_metadata(FLAGS.data_dir)["attributes"]:
        results = evaluate(os.path.join(FLAGS.model_dir, attribute), attribute=attribute,
                           **overrides)
        for split, result in results.items():
            rows[split].append(result)
    for split, split_rows in rows.items():
        print(report.write_table(split_rows,
                                 os.path.join(FLAGS.model_dir, f"results_{split}")))


if __name__ == "__main__":
    cli.run(main, "relattr_tf.evaluate")
