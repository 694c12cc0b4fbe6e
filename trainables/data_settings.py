"""The study's data settings (DataSettings: where the tweets come from and how they become arrays), and how flat
setting names (flags, TOML keys, study.json's `settings`) map onto settings objects and their nested sections.

DataSpec (data.py: how the files are read) and VectorConfig (vectorize.py: the word vectors) nest in DataSettings;
each of their fields declared with `setting` is a setting of its own name, a flag too (`settings_fields`). Values
are converted and checked here (`convert_value`; a bad one is a ConfigError naming the setting, the bad value and
the rule), and written back as flat names (`flat_settings`).
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from trainables.data import DataSpec, format_label_map, parse_label_map
from trainables.preprocess import CleanConfig
from trainables.settings import ConfigError, check, setting
from trainables.vectorize import SEARCHED, VectorConfig

CLEAN_STEPS = tuple(f.name for f in fields(CleanConfig) if f.type in ("bool", bool))
LIST_SETTINGS = ("clean_off", "unlabelled")  # comma-separated in a flag, a list in TOML
BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}  # a bool setting's words


@dataclass(frozen=True)
class DataSettings:
    """Where the tweets come from and how they become arrays; shared by `study.run` and `study.evaluate`.

    `from_settings` builds one from flat setting names; study/config.py's StudyConfig adds the study's own settings.
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
        check(0 < self.valid_fraction < 1, "valid_fraction", self.valid_fraction, "must be in (0, 1)")
        check(0 <= self.test_fraction < 1, "test_fraction", self.test_fraction, "must be in [0, 1) (0: no test set)")
        one_of = "must be 0 when `test` names a test file (give one of them)"
        check(not (self.test and self.test_fraction), "test_fraction", self.test_fraction, one_of)
        check(self.demo_rows >= 60, "demo_rows", self.demo_rows, "must be >= 60")
        bad = [s for s in self.clean_off if s not in CLEAN_STEPS]
        check(not bad, "clean_off", ",".join(bad), f"must name cleaning steps among {', '.join(CLEAN_STEPS)}")

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
        own = nested.pop("", {})
        try:
            return cls(**own, **{section: SECTIONS[section](**v) for section, v in nested.items()})
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


def field_types(cls: type) -> dict[str, type]:
    """Setting name -> bool | int | float | str of a settings dataclass (tuples are read as comma lists)."""
    types = {"bool": bool, "int": int, "float": float, "str": str}
    return {name: types.get(f.type, str) if isinstance(f.type, str) else f.type
            for name, (_, f) in settings_fields(cls).items()}  # fmt: skip


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
            return value if isinstance(value, bool) else BOOLS[str(value).lower()]
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
    except (TypeError, ValueError, KeyError):  # KeyError: a word BOOLS does not know
        expected = {bool: "true or false", int: "an integer", float: "a finite number"}.get(kind, "a string")
        raise ConfigError(f"`{name}` ({source}) must be {expected}, but got {value!r}.") from None
