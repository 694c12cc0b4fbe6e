"""A field that is also a user's setting: its default, the group of its flag and its help text, declared once;
and the error of a bad setting.

Settings dataclasses (DataSpec, VectorConfig, DataSettings, and the study's in study/config.py) declare their fields
with `setting`; study/config.py turns every such field into a flag, a TOML key and a study.json entry.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(group: str, default: Any, help: str, name: str = "") -> Any:
    """A dataclass field that users set: `name` is its flag's name where it differs from the field's."""
    return field(default=default, metadata={"group": group, "help": help, "name": name})


class ConfigError(ValueError):
    """A bad setting; the message names it, the bad value and the fix."""


def check(ok: bool, name: str, value: Any, rule: str) -> None:
    """Raise ConfigError naming the setting, its rule and the bad value unless `ok`."""
    if not ok:
        raise ConfigError(f"`{name}` {rule}, but got {value!r}.")
