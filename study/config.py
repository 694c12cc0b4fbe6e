"""Study settings: the frozen StudyConfig (the data's settings, trainables/data_settings.py, and the study's own),
its flags, and the TOML file that takes the same keys.

Precedence: defaults < the demo data's preset (DEMO_PRESET, without `--train`) < `--smoke` preset < TOML file < flags
given on the command line. Every check runs when the settings are built, before Ray starts, and raises ConfigError
naming the setting, the bad value and the rule.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import tomllib
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from trainables.data_settings import DataSettings, convert_value, field_types, settings_fields
from trainables.metrics import METRIC, MODE
from trainables.settings import ConfigError, check, setting
from trainables.vectorize import SEARCHED

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = (
    "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (it names a folder inside "
    "`results_dir`)"
)

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
        "output", 0, "top trials whose best checkpoint (weights, optimiser state) is kept once the study ends; 0: none"
    )
    final_top: int = setting(
        "final", 3, "configurations the final stage re-scores by k-fold CV on every labelled row (0: no final stage)"
    )
    final_folds: int = setting("final", 5, "k of the final stage's stratified k-fold CV")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_samples", "max_epochs", "grace_period", "reduction_factor"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        check(self.reduction_factor >= 2, "reduction_factor", self.reduction_factor, "must be >= 2")
        asha, grace, gpus = self.asha_metric, self.grace_period, self.gpus_per_trial
        check(asha in ASHA_METRICS, "asha_metric", asha, f"must be one of {tuple(ASHA_METRICS)}")
        check(grace <= self.max_epochs, "grace_period", grace, f"must be <= `max_epochs` ({self.max_epochs})")
        check(self.final_folds >= 2, "final_folds", self.final_folds, "must be >= 2")
        counts = ("n_startup_trials", "max_concurrent", "keep_predictions", "keep_checkpoints", "max_failures")
        for name in (*counts, "final_top"):
            check(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        check(self.cpus_per_trial > 0, "cpus_per_trial", self.cpus_per_trial, "must be > 0")
        check(gpus >= 0, "gpus_per_trial", gpus, "must be >= 0")
        whole = "must be a fraction of one GPU (<= 1) or a whole number of GPUs"
        check(gpus <= 1 or float(gpus).is_integer(), "gpus_per_trial", gpus, whole)
        for name in ("name", "resume"):
            value = getattr(self, name)
            check(value == "" or (NAME_RE.match(value) is not None and ".." not in value), name, value, NAME_RULE)
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

    def fixed_hparams(self, **over: Any) -> dict[str, Any]:
        """The hyperparameters that every trial and fold task of the study shares besides its space's fixed ones."""
        threads, device = max(1, int(self.cpus_per_trial)), "cuda" if self.gpus_per_trial else "cpu"
        return {"seed": self.seed, "max_epochs": self.max_epochs, "num_threads": threads, "device": device, **over}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


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
        groups[f.metadata["group"]].add_argument(_flag(name), default=argparse.SUPPRESS, help=help_text, **extra)
    if cls is StudyConfig:
        preset = "small preset for a laptop or one GPU: " + ", ".join(f"{k}={v}" for k, v in SMOKE_PRESET.items())
        groups["search"].add_argument("--smoke", action="store_true", default=argparse.SUPPRESS, help=preset)
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
    chosen = {**(read_toml(toml_path, cls) if toml_path else {}), **given}
    smoke = chosen.pop("smoke", False)
    presets = dict(DEMO_PRESET) if cls is StudyConfig and not chosen.get("train") else {}
    if smoke and cls is StudyConfig:
        presets.update(SMOKE_PRESET)
        if chosen.get("vectors"):
            presets.pop("vector_size")  # a pretrained file has its own dimension
    return cls.from_settings(**{**presets, **chosen})
