"""The command flags, generated from relattr_tf.config's one definition: one absl flag per
setting (flat names, so flagfiles read `--width=0.25`), and the Config read back from them.

    config_flags.define_flags()          # at import of a command's main module
    config = config_flags.from_flags()   # in main, after absl parsed the flags
"""
import dataclasses

from absl import flags

from relattr_tf.config import FAMILIES, Config, ConfigError, DataConfig, TrainConfig, family_of


def _section_classes():
    out = {"data": DataConfig, "train": TrainConfig}
    out.update({name: cls for name, (cls, _) in FAMILIES.items()})
    return out


def define_flags(flag_values=None):
    """One absl flag per setting of every section (flat names, defined once each)."""
    fv = flags.FLAGS if flag_values is None else flag_values
    models = [m for _, ms in FAMILIES.values() for m in ms]
    flags.DEFINE_enum("model", Config.model, models, "Model to train.", flag_values=fv)
    seen = {"model"}
    for cls in _section_classes().values():
        for f in dataclasses.fields(cls):
            if f.name in seen:
                continue  # a later family may reuse a name with the same meaning
            seen.add(f.name)
            _define(fv, f)


def _define(fv, field):
    meta, default, name = field.metadata, field.default, field.name
    bounds = dict(lower_bound=meta["lower"], upper_bound=meta["upper"])
    if isinstance(default, bool):
        flags.DEFINE_boolean(name, default, meta["help"], flag_values=fv)
    elif isinstance(default, int):
        flags.DEFINE_integer(name, default, meta["help"], flag_values=fv, **bounds)
    elif isinstance(default, float):
        flags.DEFINE_float(name, default, meta["help"], flag_values=fv, **bounds)
    elif isinstance(default, tuple):
        flags.DEFINE_list(name, [str(x) for x in default], meta["help"], flag_values=fv)
        item = type(default[0]) if default else str
        choices, lower = meta["choices"], meta["lower"]

        def check(values):
            try:
                parsed = [item(v) for v in values]
            except ValueError:
                raise flags.ValidationError(f"--{name}: every item must be a {item.__name__}")
            if choices and not set(parsed) <= set(choices):
                raise flags.ValidationError(f"--{name}: items must be among "
                                            f"{', '.join(choices)}")
            if lower is not None and any(v < lower for v in parsed):
                raise flags.ValidationError(f"--{name}: items must be at least {lower}")
            return True
        flags.register_validator(name, check, flag_values=fv)
    elif meta["choices"]:
        flags.DEFINE_enum(name, default, list(meta["choices"]), meta["help"], flag_values=fv)
    else:
        flags.DEFINE_string(name, default, meta["help"], flag_values=fv)


def from_flags(flag_values=None):
    """The Config of the parsed flags; flags of another family's section must not be set."""
    fv = flags.FLAGS if flag_values is None else flag_values
    model = fv.model
    family = family_of(model)

    def build(cls):
        values = {}
        for f in dataclasses.fields(cls):
            value = fv[f.name].value
            if isinstance(f.default, tuple):
                item = type(f.default[0]) if f.default else str
                value = tuple(item(v) for v in value)
            values[f.name] = value
        return cls(**values)

    own = {f.name for f in dataclasses.fields(FAMILIES[family][0])}
    for name, (cls, _) in FAMILIES.items():
        if name == family:
            continue
        for f in dataclasses.fields(cls):
            if f.name not in own and fv[f.name].present:
                raise ConfigError(f"--{f.name} is a setting of the {name} models, not of "
                                  f"--model={model}")
    config = Config(model=model, data=build(DataConfig), train=build(TrainConfig),
                    family=build(FAMILIES[family][0]))
    if hasattr(config.family, "train_weights"):
        config.family.train_weights()  # checks the weights' syntax now
    if hasattr(config.family, "check"):
        config.family.check()
    return config


def from_args(args):
    """(Config, model_dir) of command-line flags, as relattr_tf.train reads them, for
    notebooks and scripts: from_args(["--flagfile=configs/smoke.flags", "--attribute=size"])."""
    fv = flags.FlagValues()
    define_flags(fv)
    flags.DEFINE_string("model_dir", "runs/default", "", flag_values=fv)
    try:
        fv(["relattr_tf", *args])
    except flags.Error as error:
        raise ConfigError(str(error)) from None
    return from_flags(fv), fv.model_dir
