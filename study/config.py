"""Study settings: the frozen StudyConfig, its flags, and the TOML file that takes the same keys.

Precedence: defaults < `--smoke` preset < TOML file < flags given on the command line. Every check runs
here, before Ray starts, and raises ConfigError naming the setting, the bad value and the rule.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import math
import re
import tomllib
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from trainables.data import DataSpec, format_label_map, parse_label_map
from trainables.metrics import METRIC, MODE
from trainables.preprocess import CleanConfig
from trainables.settings import setting
from trainables.vectorize import SEARCHED, VectorConfig

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad setting; the message names it, the bad value and the fix."""


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = (
    "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it names a folder inside "
    "`results_dir`)"
)
CLEAN_STEPS = tuple(f.name for f in fields(CleanConfig) if f.type in ("bool", bool))
LIST_SETTINGS = ("clean_off", "unlabelled")  # comma-separated in a flag, a list in TOML


# The flags' groups in `--help`, in this order; each field names its group.
GROUPS = {
    "data": "data files, columns and splits",
    "vectors": "cleaning and word vectors",
    "search": "the search",
    "final": "the final stage",
    "cluster": "Ray, resources and retries",
    "output": "results",
}


SMOKE_PRESET: dict[str, Any] = {
    "space": "smoke",
    "num_samples": 4,
    "max_epochs": 3,
    "grace_period": 1,
    "demo_rows": 600,
    "vector_size": 32,
    "final_top": 2,
    "final_folds": 2,
}
# The built-in demo data's (no `train`) smaller final stage, so that the README's first command ends in about a
# minute and a half on 2 cores; flags, the TOML file and `--smoke` still win. Real data gets the defaults.
DEMO_PRESET: dict[str, Any] = {"final_top": 2, "final_folds": 3}
ASHA_METRICS: dict[str, str] = {METRIC: MODE, "val_loss": "min", "val_auc": "max", "val_accuracy": "max"}


@dataclass(frozen=True)
class DataSettings:
    """Where the tweets come from and how they become arrays; shared by `study.run` and `study.evaluate`.

    How the files are read (`data_spec`) and the word vectors (`vector_config`) are the trainables' own settings
    objects, whose fields are flags too (`settings_fields`); `from_settings` builds one from flat setting names.
    """

    train: str = setting("data", "", "labelled training CSV (default: the built-in demo data)")
    valid: str = setting("data", "", "labelled validation CSV (default: a seeded stratified split of --train)")
    unlabelled: tuple[str, ...] = setting(
        "data",
        (),
        "comma-separated files of extra texts for the word vectors only (CSV, or .txt: one text per line), e.g. the "
        "original test_set.csv; streamed, never loaded whole",
    )
    unlabelled_text_column: str = setting(
        "data", "", "text column of the --unlabelled CSV files (default: --text-column)"
    )
    valid_fraction: float = setting("data", 0.2, "validation share when --valid is not given")
    test: str = setting(
        "data", "", "labelled CSV held out from the search and the final stage; the final model's score on it"
    )
    test_fraction: float = setting(
        "data", 0.0, "share of --train held out as the test set (a seeded stratified split taken first); 0: none"
    )
    demo_rows: int = setting("data", 2400, "rows of the built-in demo data")
    data_seed: int = setting("data", 0, "seed of the split and of Word2Vec")
    clean_off: tuple[str, ...] = setting(
        "vectors", (), f"comma-separated cleaning steps to switch off, among: {', '.join(CLEAN_STEPS)}"
    )
    data_spec: DataSpec = field(default_factory=DataSpec)
    vector_config: VectorConfig = field(default_factory=VectorConfig)

    def __post_init__(self) -> None:
        for name in LIST_SETTINGS:  # a comma-separated string given in code, as on the command line
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, convert_value(name, getattr(self, name), tuple, "setting"))
        if self.vector_config.seed != self.data_seed:  # one seed for the split and the vectors
            object.__setattr__(self, "vector_config", replace(self.vector_config, seed=self.data_seed))
        _check(0 < self.valid_fraction < 1, "valid_fraction", self.valid_fraction, "must be in (0, 1)")
        _check(0 <= self.test_fraction < 1, "test_fraction", self.test_fraction, "must be in [0, 1) (0: no test set)")
        _check(
            not (self.test and self.test_fraction),
            "test_fraction",
            self.test_fraction,
            "must be 0 when `test` names a test file (give one of them)",
        )
        _check(self.demo_rows >= 60, "demo_rows", self.demo_rows, "must be >= 60")
        bad = [s for s in self.clean_off if s not in CLEAN_STEPS]
        _check(not bad, "clean_off", ",".join(bad), f"must name cleaning steps among {', '.join(CLEAN_STEPS)}")

    @classmethod
    def from_settings(cls, **values: Any):
        """`cls` from flat setting names (flags without dashes, TOML keys, study.json's `settings`).

        Raises:
            ConfigError: a name `cls` does not know, or a value a settings object refuses (its message names it).
        """
        where = settings_fields(cls)
        unknown = sorted(set(values) - set(where))
        if unknown:
            raise ConfigError(f"`{unknown[0]}` is not a setting; known settings: {', '.join(where)}.")
        nested: dict[str, dict[str, Any]] = {}
        types = field_types(cls)
        for name, value in values.items():
            section, f = where[name]
            nested.setdefault(section, {})[f.name] = convert_value(name, value, types[name], "setting")
        try:
            own = nested.pop("", {})
            return cls(**own, **{section: SECTIONS[section](**v) for section, v in nested.items()})
        except ConfigError:
            raise
        except ValueError as e:  # a settings object's own check, in the settings' names
            raise ConfigError(str(e)) from None

    def clean_config(self) -> CleanConfig:
        return CleanConfig(**{step: False for step in self.clean_off})

    def unlabelled_spec(self) -> DataSpec:
        """How the unlabelled CSV files are read: their text column, and the party prefix where they have one."""
        spec = self.data_spec
        return DataSpec(
            text_column=self.unlabelled_text_column or spec.text_column,
            party_column=spec.party_column if spec.party_column != self.unlabelled_text_column else "",
            prepend_party=spec.prepend_party,
        )


# The settings objects nested in DataSettings, by field: each of their fields declared with `setting` is a setting.
SECTIONS: dict[str, type] = {"data_spec": DataSpec, "vector_config": VectorConfig}


def searched_settings() -> dict[str, str]:
    """A search space's representation parameter -> the setting of the same thing (e.g. window -> w2v_window)."""
    names = {f.name: name for name, (section, f) in settings_fields(DataSettings).items() if section == "vector_config"}
    return {param: names[field] for param, field in SEARCHED.items()}


def settings_fields(cls: type) -> dict[str, tuple[str, Field]]:
    """Setting name -> (the nested settings object's field in `cls`, or "" for `cls`'s own; the field)."""
    out: dict[str, tuple[str, Field]] = {}
    for f in fields(cls):
        if f.name in SECTIONS:
            for g in fields(SECTIONS[f.name]):
                if "group" in g.metadata:
                    out[g.metadata["name"] or g.name] = (f.name, g)
        else:
            out[f.name] = ("", f)
    return out


def flat_settings(cfg: DataSettings, cls: type | None = None) -> dict[str, Any]:
    """`cfg`'s settings (those of `cls`, default all) as flat names and plain values (lists for tuples): study.json's
    `settings`, TOML's keys."""
    out = {}
    for name, (section, f) in settings_fields(cls or type(cfg)).items():
        value = getattr(getattr(cfg, section) if section else cfg, f.name)
        out[name] = format_label_map(value) if name == "label_map" else list(value) if name in LIST_SETTINGS else value
    return out


@dataclass(frozen=True)
class StudyConfig(DataSettings):
    space: str = setting(
        "search", "default", "a built-in search space (study.run --help lists them), or a .toml file that declares one"
    )
    num_samples: int = setting("search", 12, "trials in the study")
    max_epochs: int = setting("search", 6, "epochs of a trial that runs to the end")
    grace_period: int = setting("search", 1, "epochs every trial runs before ASHA may stop it")
    reduction_factor: int = setting("search", 3, "ASHA keeps the best 1/N of trials at each rung")
    asha_metric: str = setting(
        "search",
        METRIC,
        "what ASHA ranks trials by at its rungs: val_macro_f1, or val_loss (smoother on noisy labels), val_auc, "
        "val_accuracy; the searcher always maximises val_macro_f1",
    )
    n_startup_trials: int = setting(
        "search", 0, "random trials before TPE models the results (0: a quarter of the budget)"
    )
    max_concurrent: int = setting("cluster", 0, "trials at once (0: as many as the cluster allows)")
    cpus_per_trial: float = setting("cluster", 1.0, "CPUs per trial")
    gpus_per_trial: float = setting("cluster", 0.0, "GPUs per trial; a fraction shares one card, e.g. 0.25")
    max_failures: int = setting("cluster", 2, "retries of a failed trial, from its last checkpoint")
    seed: int = setting("search", 0, "seed of the searcher and of the trials")
    name: str = setting("output", "", "study name: results go to RESULTS_DIR/NAME (default: SPACE-DATE-TIME)")
    results_dir: str = setting("output", "results", "folder holding every study's results")
    address: str = setting("cluster", "", "address of a running Ray cluster, e.g. auto (default: start Ray here)")
    storage: str = setting(
        "cluster", "", "where Ray keeps trial state; must be shared (NFS path or s3://...) on a multi-node cluster"
    )
    resume: str = setting("output", "", "complete the interrupted study NAME to its full budget")
    keep_predictions: int = setting("output", 5, "top trials whose validation predictions are saved")
    keep_checkpoints: int = setting(
        "output",
        0,
        "top trials whose best checkpoint (weights and optimiser state) is kept once the study ends; 0: none",
    )
    final_top: int = setting(
        "final", 3, "configurations the final stage re-scores by k-fold CV on every labelled row (0: no final stage)"
    )
    final_folds: int = setting("final", 5, "k of the final stage's stratified k-fold CV")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_samples", "max_epochs", "grace_period", "reduction_factor"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        _check(self.reduction_factor >= 2, "reduction_factor", self.reduction_factor, "must be >= 2")
        asha, grace, gpus = self.asha_metric, self.grace_period, self.gpus_per_trial
        _check(asha in ASHA_METRICS, "asha_metric", asha, f"must be one of {tuple(ASHA_METRICS)}")
        _check(grace <= self.max_epochs, "grace_period", grace, f"must be <= `max_epochs` ({self.max_epochs})")
        _check(self.final_folds >= 2, "final_folds", self.final_folds, "must be >= 2")
        counts = ("n_startup_trials", "max_concurrent", "keep_predictions", "keep_checkpoints", "max_failures")
        for name in (*counts, "final_top"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        _check(self.cpus_per_trial > 0, "cpus_per_trial", self.cpus_per_trial, "must be > 0")
        _check(gpus >= 0, "gpus_per_trial", gpus, "must be >= 0")
        whole = "must be a fraction of one GPU (<= 1) or a whole number of GPUs"
        _check(gpus <= 1 or float(gpus).is_integer(), "gpus_per_trial", gpus, whole)
        for name in ("name", "resume"):
            value = getattr(self, name)
            _check(value == "" or (NAME_RE.match(value) is not None and ".." not in value), name, value, NAME_RULE)
        from search_spaces import get_space

        try:
            space = get_space(self.space)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        searched = sorted(set(space.params) & set(SEARCHED))
        if self.vector_config.pretrained and searched:
            raise ConfigError(
                f"`space` {self.space!r} searches the settings of trained vectors ({', '.join(searched)}), but "
                f"`vectors` gives pretrained ones ({self.vector_config.pretrained!r}); choose a space that does not "
                "(e.g. default) or leave out `--vectors`."
            )

    def startup_trials(self) -> int:
        """TPE's random start-up trials: what the user set, else a quarter of the budget, within 2..10."""
        return self.n_startup_trials or max(2, min(10, math.ceil(self.num_samples / 4)))

    def to_dict(self) -> dict[str, Any]:
        return flat_settings(self)


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"`{name}` {rule}, but got {value!r}.")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def convert_value(name: str, value: Any, kind: type, source: str) -> Any:
    """Turn a TOML or command-line value into the field's type, or raise ConfigError naming the setting."""
    if name == "label_map":
        if isinstance(value, list | tuple):  # pairs, as a settings object holds them
            return tuple(tuple(pair) for pair in value)
        try:
            return parse_label_map(str(value))
        except ValueError as e:
            raise ConfigError(f"{e} ({source})") from None
    if name in LIST_SETTINGS:
        if isinstance(value, str):
            value = value.split(",")
        if not (isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)):
            raise ConfigError(
                f"`{name}` ({source}) must be a comma-separated list or a list of strings, but got {value!r}."
            )
        return tuple(s.strip() for s in value if s.strip())
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        return str(value)
    except (TypeError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a finite number"}.get(kind, "a string")
        raise ConfigError(f"`{name}` ({source}) must be {expected}, but got {value!r}.") from None


def field_types(cls: type) -> dict[str, type]:
    """Setting name -> bool | int | float | str of a settings dataclass (tuples are read as comma lists)."""
    types = {"bool": bool, "int": int, "float": float, "str": str}
    return {name: types.get(f.type, str) if isinstance(f.type, str) else f.type
            for name, (_, f) in settings_fields(cls).items()}  # fmt: skip


def _known(cls: type) -> dict[str, type]:
    """The keys a flag or the TOML file may set: the settings of `cls`, and for a study the presets."""
    return field_types(cls) | ({"smoke": bool} if cls is StudyConfig else {})


def add_arguments(parser: argparse.ArgumentParser, cls: type = StudyConfig) -> None:
    """One flag per field of `cls` in its group, all defaulting to "not given" so that TOML values can fill the
    gaps; for a study also `--smoke`, the preset."""
    types = field_types(cls)
    groups = {g: parser.add_argument_group(title) for g, title in GROUPS.items()}
    for name, (_, f) in settings_fields(cls).items():
        kind, help_text = types[name], f.metadata.get("help", "")
        if f.default is not MISSING and f.default not in ("", ()):
            help_text += f" (default: {f.default})"
        extra = {"action": argparse.BooleanOptionalAction} if kind is bool else {"metavar": name.upper()}
        groups[f.metadata["group"]].add_argument(
            _flag(name), dest=name, default=argparse.SUPPRESS, help=help_text, **extra
        )
    if cls is StudyConfig:
        preset = ", ".join(f"{k}={v}" for k, v in SMOKE_PRESET.items())
        groups["search"].add_argument(
            "--smoke",
            action="store_true",
            default=argparse.SUPPRESS,
            help=f"small preset for a laptop or one GPU: {preset}",
        )
    for group in groups.values():  # a command without a group's settings shows no empty heading
        if not group._group_actions:
            parser._action_groups.remove(group)


def read_toml(path: str | Path, cls: type = StudyConfig) -> dict[str, Any]:
    """Settings from a TOML file whose keys are the flag names (dashes or underscores)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist or is not a file; give an existing TOML file.")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}. Fix the file's syntax.") from None
    known = _known(cls)
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name == "resume":
            raise ConfigError(
                f"config file {str(p)!r} sets `resume`, which only the command line can do; "
                "remove it and run `--resume NAME`."
            )
        if name not in known:
            settings = [k.replace("_", "-") for k in known if k != "resume"]
            close = difflib.get_close_matches(key.replace("_", "-"), settings, n=1)
            raise ConfigError(
                f"config file {str(p)!r} has an unknown setting {key!r}."
                + (f" Did you mean {close[0]!r}?" if close else "")
                + f" Known settings: {', '.join(settings)}."
            )
        if isinstance(value, dict):
            raise ConfigError(f"config file {str(p)!r}: `{key}` must be a plain value, not a table.")
        out[name] = convert_value(name, value, known[name], f"in {p.name}")
    return out


def saved_settings(saved: dict[str, Any], source: str) -> dict[str, Any]:
    """StudyConfig's values (flat setting names) from a study.json's `settings`, lists as tuples.

    Raises:
        ConfigError: a setting this version does not know (the study was written by another version).
    """
    types = field_types(StudyConfig)
    unknown = sorted(set(saved) - set(types))
    if unknown:
        raise ConfigError(
            f"the settings of {source} hold {', '.join(unknown)}, which this version does not know; use the version "
            "that wrote the study."
        )
    return {k: convert_value(k, v, types[k], f"in {source}") for k, v in saved.items()}


def build_config(flags: dict[str, Any], toml_path: str | None = None, cls: type = StudyConfig):
    """Merge defaults, the smoke preset, the TOML file and the flags into a validated `cls`."""
    types = _known(cls)
    given = {k: convert_value(k, v, types[k], f"flag {_flag(k)}") for k, v in flags.items()}
    from_file = read_toml(toml_path, cls) if toml_path else {}
    smoke = given.pop("smoke", from_file.pop("smoke", False))
    merged: dict[str, Any] = {}
    if cls is StudyConfig and not given.get("train", from_file.get("train")):
        merged.update(DEMO_PRESET)
    if smoke and cls is StudyConfig:
        merged.update(SMOKE_PRESET)
        if given.get("vectors", from_file.get("vectors")):
            merged.pop("vector_size")  # a pretrained file has its own dimension
    merged.update(from_file)
    merged.update(given)
    return cls.from_settings(**merged)
