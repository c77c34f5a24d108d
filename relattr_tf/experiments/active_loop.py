"""ATTIC's rounds: adversarial phase -> labelling package -> labels -> data directory -> the
ranker retrained from its pretrained state -> evaluation, with the control carried over.

    run_rounds(config, model_dir, options)

Each round lives in <model_dir>/round-NN/ (relattr_tf.artifacts.rounds names its files).
Every stage is skipped when its output exists and resumes from its checkpoint otherwise, so a
run killed at any moment and started again with the same command continues in its round.
The accepted pairs go into --data_dir as image table and pair split
<model_dir name>-<attribute>-rNN.
"""
import dataclasses
import math
import os

from relattr_tf import config as config_lib
from relattr_tf.artifacts import control as control_artifact, generator as generator_artifact
from relattr_tf.artifacts import rounds
from relattr_tf.config import ConfigError
from relattr_tf.data import pipeline, schema, writer
from relattr_tf.evaluation import report
from relattr_tf.labelling import package, simulated_crowd
from relattr_tf.training import run

LABELERS = ("crowd", "auto", "human")


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    rounds: int = 1
    labeler: str = "crowd"  # crowd (offline), auto (labels from y) or human (Label Studio)
    stop_after_export: bool = False
    import_labels: str = ""  # answers for the first round still waiting for them
    retrain: bool = True
    crowd_seed: int = 0
    command: str = ""
    split_prefix: str = ""  # names of the appended splits ('' = the model_dir's name)


def mixed_splits(config, real, synthetic):
    """--train_split entries that draw every pair alike (each split weighted by its pair
    count), labelled synthetic pairs --synthetic_weight times as likely as real ones."""
    meta = schema.read_metadata(config.data.data_dir)
    def weight(split, factor):
        count = pipeline.pair_count(meta, config.data.data_dir, config.family.attribute, [split])
        return f"{split}:{factor * count:g}"
    return tuple(weight(s, 1.0) for s in real) + tuple(
        weight(s, config.family.synthetic_weight) for s in synthetic)


def ranker_config(config, train_split):
    """The plain ranker run of ATTIC's ranker settings (ranker_model, warm_start and the rest)."""
    net = config.family
    fields = {f.name for f in dataclasses.fields(config_lib.RankerConfig)}
    family = config_lib.RankerConfig(**{k: getattr(net, k) for k in fields})
    return dataclasses.replace(config, model=net.ranker_model,
                               family=dataclasses.replace(family, train_split=train_split))


def with_real_budget(config, command=""):
    """--real_pairs > 0: the first training split replaced by a seeded draw of that many of
    its pairs (a split of its own in the data directory)."""
    net = config.family
    if not net.real_pairs:
        return config
    first, *rest = net.train_split
    split, colon, weight = first.partition(":")
    subset = f"{split}-n{net.real_pairs}-s{config.train.seed}"
    writer.add_pair_subset(config.data.data_dir, net.attribute, split, subset, net.real_pairs,
                           seed=config.train.seed, command=command)
    return config.with_values(train_split=(subset + colon + weight, *rest), real_pairs=0)


def write_package(config, adversarial_dir, package_dir, prefix):
    """The adversarial run's T slots through its control and the decoder -> the package."""
    net = config.family
    control, slots = control_artifact.load_control(adversarial_dir)
    decoder, info = generator_artifact.load_generator(net.generator_dir)
    images, y = control_artifact.generate_pairs(control, decoder, slots,
                                                config.data.image_size, training=True)
    return package.write_package(
        package_dir, images, y, attribute=net.attribute,
        generator_attribute=net.generator_attribute or net.attribute,
        attribute_names=info["attributes"], prefix=prefix, image_urls=net.image_urls,
        local_files_root=net.local_files_root)


def label_round(config, directory, name, options, answers_file):
    """Labels a round's package with the chosen labeler and imports them; returns the summary,
    or None when people must label it first."""
    net, data_dir = config.family, config.data.data_dir
    package_dir = os.path.join(directory, rounds.PACKAGE_DIR)
    if options.labeler == "auto" and not answers_file:
        summary = package.auto_labels(package_dir, data_dir, name, command=options.command)
    else:
        if not answers_file and options.labeler == "crowd":
            answers_file = os.path.join(directory, rounds.CROWD_EXPORT_FILE)
            attribute = net.generator_attribute or net.attribute
            if not simulated_crowd.can_label(attribute):
                raise ConfigError(f"--labeler=crowd: the simulated crowd measures the embedded "
                                  f"benchmark's attributes only, not {attribute!r}; use "
                                  f"--labeler=human or auto")
            simulated_crowd.write_crowd_export(package.read(package_dir), answers_file,
                                               seed=options.crowd_seed)
        if not answers_file:
            return None
        summary = package.import_labels(answers_file, package_dir, data_dir, name,
                                        min_agreement=net.min_agreement,
                                        min_confidence=net.min_confidence,
                                        command=options.command)
    report.write_json(os.path.join(directory, rounds.LABELS_FILE), summary)
    print(package.summary_line(summary), flush=True)
    return summary


def human_instructions(package_dir, command):
    return (f"labelling package written to {package_dir}: import tasks.json into a Label "
            f"Studio project whose labelling config is labeling_config.xml (or fill in "
            f"tasks.csv), export the annotations as JSON, then continue with:\n  {command} "
            f"--import_labels=EXPORT.json")


def run_rounds(config, model_dir, options):
    """Runs (or continues) the rounds; returns {round: result dict}."""
    if options.labeler not in LABELERS:
        raise ConfigError(f"--labeler={options.labeler}: one of {', '.join(LABELERS)}")
    labelled, results = [], {}
    run.ensure_data(config)
    config = with_real_budget(config, options.command)
    base_split = tuple(s.partition(":")[0] for s in config.family.train_split)
    if not config.family.warm_start:
        pretrained_dir = os.path.join(model_dir, rounds.PRETRAINED_DIR)
        print(f"pretraining {config.family.ranker_model} on the real pairs "
              f"({', '.join(base_split)}) -> {pretrained_dir}", flush=True)
        results["pretrained"] = run.train_or_reuse(
            ranker_config(config, mixed_splits(config, base_split, [])), pretrained_dir)
        config = config.with_values(warm_start=pretrained_dir)
    answers_file = options.import_labels
    previous_adversarial = None
    for number in range(1, options.rounds + 1):
        directory = rounds.round_dir(model_dir, number)
        name = rounds.synthetic_split(config, model_dir, number, options.split_prefix)
        adversarial_dir = os.path.join(directory, rounds.ADVERSARIAL_DIR)
        round_config = config.with_values(train_split=mixed_splits(config, base_split,
                                                                   labelled),
                                          control_from=previous_adversarial or
                                          config.family.control_from)
        print(f"round {number} of {options.rounds}: adversarial phase -> {adversarial_dir}",
              flush=True)
        generated = run.train_or_reuse(round_config, adversarial_dir)["generated"]
        package_dir = os.path.join(directory, rounds.PACKAGE_DIR)
        summary = rounds.labels_done(directory)
        if summary is None:
            if not os.path.exists(os.path.join(package_dir, package.PAIRS_FILE)):
                write_package(round_config, adversarial_dir, package_dir, name)
            if not answers_file and (options.stop_after_export or options.labeler == "human"):
                print(human_instructions(package_dir, options.command), flush=True)
                return results
            summary = label_round(round_config, directory, name, options, answers_file)
            answers_file = ""  # used by this round only
        if summary["accepted"]:
            labelled.append(name)
        result = dict(round=number, labels=summary, generated=generated)
        if options.retrain:
            ranker_dir = os.path.join(directory, rounds.RANKER_DIR)
            splits = mixed_splits(config, base_split, labelled)
            print(f"round {number}: retraining {config.family.ranker_model} on "
                  f"{', '.join(splits)} -> {ranker_dir}", flush=True)
            result["evaluation"] = run.train_or_reuse(ranker_config(config, splits), ranker_dir)
        results[number] = result
        print(round_summary_line(result), flush=True)
        previous_adversarial = adversarial_dir
    return results


def round_summary_line(result):
    """One line of a round's result: the labels accepted, how often they agree with the y
    ordering of the generated pairs, the retrained ranker's accuracies."""
    labels = result["labels"]
    parts = [f"round {result['round']}: {labels['accepted']} of {labels['pairs']} generated "
             f"pairs accepted"]
    agree = labels.get("agree_with_y", float("nan"))
    if not math.isnan(agree):
        parts.append(f"their labels agree with y on {100 * agree:.0f}%")
    for split, evaluation in result.get("evaluation", {}).items():
        parts.append(f"retrained ranker on {split}: {100 * evaluation['accuracy']:.1f}%")
    return "; ".join(parts)
