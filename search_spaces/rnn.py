"""What a search space of the RNN classifier is, its checks, and the plain data that declares one.

A space says which hyperparameters TPE searches (Optuna distributions), which are fixed, and which
configurations are tried first. It is declared as plain data: a TOML file (the built-in spaces are the .toml
files beside this module; a user's has the same form) or study.json's `space` block, which is the same data as
JSON. Names are the hyperparameters of trainables/hparams.py's HParams (less the study's own settings) and the
representation settings a space may search (trainables/vectorize.py `SEARCHED`: vectorizer, vector_size, window,
sg, min_count), whose trials take their data from the study's representation store
(study/search/representations.py). The registry of names and files is __init__.py.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainables.hparams import HParams
from trainables.vectorize import SEARCHED, VectorConfig

# HParams fields that every trial takes from the study's settings, never from its space: field -> flag
STUDY_SETTINGS = {"seed": "--seed", "max_epochs": "--max-epochs", "num_threads": "--cpus-per-trial",
                  "device": "--gpus-per-trial"}  # fmt: skip
# The names a space may search or fix and the type of their values: HParams's fields less the study's own
# settings, then the representation settings (SEARCHED, typed as VectorConfig's fields).
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_VECTOR_TYPES = {f.name: _TYPES[f.type] for f in fields(VectorConfig) if f.type in _TYPES}
HYPERPARAMETERS: dict[str, type] = {
    **{f.name: _TYPES[f.type] for f in fields(HParams) if f.name not in STUDY_SETTINGS},
    **{name: _VECTOR_TYPES[field] for name, field in SEARCHED.items()},
}
KEYS = ("description", "params", "fixed", "enqueue")  # a space's keys in TOML (study.json adds `name`)
_RANGE_KEYS = ("low", "high", "log", "step")
DISTRIBUTIONS = {"float": _RANGE_KEYS, "int": _RANGE_KEYS, "categorical": ("choices",)}  # a type -> the keys it takes
EXAMPLE = '{ type = "float", low = 0.0, high = 0.5 }'
WORDS = {str: "a string", int: "an integer", float: "a number", bool: "a boolean (true or false)"}


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    params: dict[str, BaseDistribution]  # searched by TPE
    fixed: dict[str, Any] = field(default_factory=dict)  # the same for every trial
    enqueue: tuple[dict[str, Any], ...] = ()  # configurations tried first, in order

    def __post_init__(self) -> None:
        if problem := space_problem(self.params, self.fixed, self.enqueue):
            raise ValueError(f"space {self.name!r}: {problem}")

    def to_dict(self) -> dict[str, Any]:
        """The space as plain data: its name and what a TOML file declares (study.json records this)."""
        return {
            "name": self.name,
            "description": self.description,
            "params": {k: distribution_dict(d) for k, d in self.params.items()},
            "fixed": dict(self.fixed),
            "enqueue": [dict(point) for point in self.enqueue],
        }


def space_problem(params: dict[str, BaseDistribution], fixed: dict[str, Any], enqueue) -> str | None:
    """What is wrong with a space (the rule, the value, the fix), or None: the one check of every space."""
    if not params:
        return "`params` must search at least one hyperparameter, but got none; move one from `fixed`."
    for section, names in (("params", params), ("fixed", fixed)):
        for name in names:
            if name in STUDY_SETTINGS:
                return (
                    f"`{section}.{name}` is a setting of the study, not of its space; remove it and give "
                    f"{STUDY_SETTINGS[name]}."
                )
            if name not in HYPERPARAMETERS:
                close = difflib.get_close_matches(name, HYPERPARAMETERS, n=1)
                return (
                    f"`{section}` names must be hyperparameters (HParams fields of trainables/hparams.py or the "
                    f"representation settings {', '.join(SEARCHED)}), but got {name!r}."
                    + (f" Did you mean {close[0]!r}?" if close else "")
                    + f" Known: {', '.join(HYPERPARAMETERS)}."
                )
    overlap = sorted(set(params) & set(fixed))
    if overlap:
        return f"{overlap} are both searched and fixed; remove them from `params` or from `fixed`."
    representation = sorted(set(fixed) & set(SEARCHED))
    if representation:
        return (
            f"the representation settings {representation} may be searched, not fixed (a study's own "
            "representation comes from its data settings); move them to `params` or set them as study settings."
        )
    for name, dist in params.items():
        if problem := _distribution_type_problem(name, dist):
            return problem
    for name, value in fixed.items():
        if not _has_type(HYPERPARAMETERS[name], value):
            return f"`fixed.{name}` must be {WORDS[HYPERPARAMETERS[name]]}, but got {value!r}."
    for point in enqueue:
        if set(point) != set(params):
            return (
                f"an enqueued point must set exactly {sorted(params)}, but got {sorted(point)}; give every "
                "searched hyperparameter and no other."
            )
        try:  # Optuna's public check that values lie in their distributions
            optuna.trial.create_trial(params=point, distributions=params, value=0.0)
        except ValueError as e:
            return f"an enqueued point is outside the space: {e} Change the point or widen the range."
    return None


def _has_type(kind: type, value: Any) -> bool:
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def _distribution_type_problem(name: str, dist: BaseDistribution) -> str | None:
    kind = HYPERPARAMETERS[name]
    if isinstance(dist, CategoricalDistribution):
        bad = [c for c in dist.choices if not _has_type(kind, c)]
        return f"each of `params.{name}.choices` must be {WORDS[kind]}, but got {bad[0]!r}." if bad else None
    given = "float" if isinstance(dist, FloatDistribution) else "int"
    allowed = {int: ("int", "categorical"), float: tuple(DISTRIBUTIONS)}.get(kind, ("categorical",))  # str, bool
    if given not in allowed:
        return (
            f"`params.{name}.type` must be {' or '.join(repr(a) for a in allowed)} (a value of `{name}` is "
            f"{WORDS[kind]}), but got {given!r}."
        )
    return None


def distribution_dict(dist: BaseDistribution) -> dict[str, Any]:
    """A distribution as a TOML file declares it: {type, low, high, log?, step?} or {type, choices}."""
    if isinstance(dist, CategoricalDistribution):
        return {"type": "categorical", "choices": list(dist.choices)}
    kind = "float" if isinstance(dist, FloatDistribution) else "int"
    out: dict[str, Any] = {"type": kind, "low": dist.low, "high": dist.high}
    if dist.log:
        out["log"] = True
    if dist.step != (1 if kind == "int" else None):
        out["step"] = dist.step
    return out


def read_space(path: Path, where: str) -> SearchSpace:
    """The space a TOML file declares; its name is the file's name without `.toml`.

    Raises:
        ValueError: a file that is no valid TOML or no valid space; the message starts with `where`.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{where} is not valid TOML: {e}. Fix the file's syntax.") from None
    return space_from_dict(data, path.stem, where)


def space_from_dict(data: dict[str, Any], name: str, where: str) -> SearchSpace:
    """The space that plain data declares (a TOML file's keys, or study.json's `space` block less its `name`).

    Raises:
        ValueError: the first problem, with `where`, the key and the fix.
    """
    try:
        unknown = [k for k in data if k not in KEYS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], KEYS, n=1)
            raise ValueError(
                f"the keys must be among {', '.join(KEYS)}, but got {unknown[0]!r}."
                + (f" Did you mean {close[0]!r}?" if close else "")
            )
        description = data.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"`description` must be a string, but got {description!r}.")
        params = _table(data, "params", "[params] with a table per hyperparameter")
        params = {k: _distribution(spec, f"params.{k}") for k, spec in params.items()}
        fixed = _table(data, "fixed", "[fixed] with name = value lines")
        for k, v in fixed.items():
            _scalar(v, f"fixed.{k}")
        enqueue = data.get("enqueue", [])
        if not isinstance(enqueue, list) or not all(isinstance(p, dict) for p in enqueue):
            raise ValueError(f"`enqueue` must be a list of tables ([[enqueue]] sections), but got {enqueue!r}.")
        for i, point in enumerate(enqueue):
            for k, v in point.items():
                _scalar(v, f"enqueue[{i}].{k}")
        if problem := space_problem(params, fixed, enqueue):
            raise ValueError(problem)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return SearchSpace(name, description, params, fixed, tuple(enqueue))


def _table(data: dict[str, Any], key: str, form: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"`{key}` must be a table ({form}), but got {value!r}.")
    return value


def _scalar(value: Any, key: str) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"`{key}` must be a string, a number or a boolean, but got {value!r}.")


def _distribution(spec: Any, key: str) -> BaseDistribution:
    """One hyperparameter's distribution from its table, e.g. { type = "int", low = 16, high = 256, log = true }."""
    if not isinstance(spec, dict):
        raise ValueError(f"`{key}` must be a table such as {EXAMPLE}, but got {spec!r}.")
    kind = spec.get("type")
    if kind not in DISTRIBUTIONS:
        got = "no `type`" if kind is None else repr(kind)
        raise ValueError(f"`{key}.type` must be one of {', '.join(map(repr, DISTRIBUTIONS))}, but got {got}.")
    allowed = DISTRIBUTIONS[kind]
    unknown = [k for k in spec if k != "type" and k not in allowed]
    if unknown:
        raise ValueError(f"`{key}`: a {kind} distribution takes {', '.join(allowed)}, but got {unknown[0]!r}.")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            got = "no `choices`" if choices is None else repr(choices)
            raise ValueError(
                f'`{key}` needs `choices`, a non-empty list such as choices = ["lstm", "gru"], but got {got}.'
            )
        for c in choices:
            _scalar(c, f"{key}.choices")
        return CategoricalDistribution(choices)
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        example = EXAMPLE if kind == "float" else '{ type = "int", low = 1, high = 4 }'
        raise ValueError(f"`{key}` needs `low` and `high`, but `{missing[0]}` is missing; e.g. {example}.")
    number = int if kind == "int" else float
    for k in ("low", "high", "step"):
        if k in spec and not _has_type(number, spec[k]):
            what = 'an integer in an int distribution (or use type = "float")' if kind == "int" else "a number"
            raise ValueError(f"`{key}.{k}` must be {what}, but got {spec[k]!r}.")
    if not isinstance(spec.get("log", False), bool):
        raise ValueError(f"`{key}.log` must be true or false, but got {spec['log']!r}.")
    low, high = spec["low"], spec["high"]
    if low > high:
        raise ValueError(f"`{key}.low` must be <= `high` ({high!r}), but got {low!r}; swap them.")
    cls = IntDistribution if kind == "int" else FloatDistribution
    step = spec.get("step", 1 if kind == "int" else None)
    try:
        return cls(low, high, log=spec.get("log", False), step=step)
    except ValueError as e:  # Optuna's own rules (log needs low > 0, log and step exclude each other, ...)
        raise ValueError(f"`{key}`: {e} Change `low`, `high`, `log` or `step`.") from None


def check_values(space: SearchSpace, where: str) -> None:
    """Check that training takes every value the space can give: each fixed value, choice and range end.

    The checks are HParams's (trainables/hparams.py) and VectorConfig's (trainables/vectorize.py).

    Raises:
        ValueError: the first value refused, with `where`, its key and the rule.
    """
    values = [(f"fixed.{k}", k, v) for k, v in space.fixed.items()]
    for k, dist in space.params.items():
        if isinstance(dist, CategoricalDistribution):
            values += [(f"params.{k}.choices", k, c) for c in dist.choices]
        else:
            values += [(f"params.{k}.low", k, dist.low), (f"params.{k}.high", k, dist.high)]
    for key, name, value in values:
        try:
            if name in SEARCHED:
                VectorConfig(**{SEARCHED[name]: value})
            else:
                HParams(**{name: value})
        except ValueError as e:
            raise ValueError(f"{where}: `{key}` is {value!r}, which training refuses: {e} Change it.") from None
