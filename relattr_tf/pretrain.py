"""Pretrains the VGG16 trunk on a labelled image table and writes it as a Keras VGG16 notop
weight file, the embedded benchmark's stand-in for ImageNet's.

    python -m relattr_tf.pretrain --flagfile=configs/pretrain_synth.flags
    python -m relattr_tf.train --flagfile=configs/ablation_pretrained.flags \
        --backbone_weights=runs/pretrain_synth/vgg16_notop.h5 ...

The task is what is in each picture (make_synthetic's `pretrain` table: ten heads about the
distractors, the background texture, the light and where the subject is), disjoint from the
ranked attributes as ImageNet's classes are from "smiling". It trains with the same machinery
as every model, then writes <model_dir>/vgg16_notop.h5 and eval_pretrain.json: held-out
accuracy per head, a linear probe of the frozen features against each attribute's strength, and the
acceptance gate's verdict (printed). The same goes into the ledger, <results_dir>/<study>/
(one cell per image size, precision and seed); a run that finished in model_dir is reused.
Same flags as relattr_tf.train, plus --results_dir and --study.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # noqa: E402

from relattr_tf import cli  # noqa: E402

cli.define_training_flags(model="vgg16_scenes")
cli.define_ledger_flags()
FLAGS = flags.FLAGS


def main(argv):
    cli.no_arguments(argv)
    cli.check_family("relattr_tf.pretrain", "pretrain")
    config = cli.prepare()
    from relattr_tf.experiments import trunk_pretraining
    ledger = cli.ledger()
    result, record = trunk_pretraining.pretrain_and_record(
        config, FLAGS.model_dir, ledger, cli.command_line("relattr_tf.pretrain"))
    print(f"gate {'PASSED' if result['gate']['passed'] else 'FAILED'}; ledger: "
          f"{ledger.path(record['cell'])}")


if __name__ == "__main__":
    cli.run(main, "relattr_tf.pretrain")
