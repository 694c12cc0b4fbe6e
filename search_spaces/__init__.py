"""Search spaces by name or file: `get_space`. The built-in spaces are the .toml files in this folder; a user's
space is a .toml file of the same form (README: "Search spaces of your own"). What a space is: rnn.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from search_spaces.rnn import SearchSpace, check_values, read_space, space_from_dict

FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")  # a file's name less .toml names its space and studies
SPACES: dict[str, SearchSpace] = {
    p.stem: read_space(p, f"built-in space file {str(p)!r}") for p in sorted(Path(__file__).parent.glob("*.toml"))
}


def get_space(spec: str) -> SearchSpace:
    """The search space `spec` names: a built-in space, a .toml file that declares one, or a study.json (the
    space that study recorded).

    Raises:
        ValueError: an unknown name, a missing file, or a file that breaks a rule; the message names the file,
            the key and the fix.
    """
    if spec in SPACES:
        return SPACES[spec]
    path = Path(spec)
    if path.suffix not in (".toml", ".json"):
        known = ", ".join(f"{n} ({s.description})" for n, s in SPACES.items())
        raise ValueError(
            f"`space` must be one of the known search spaces, but got {spec!r}. Known: {known}. Or give a .toml "
            'file that declares a space (README: "Search spaces of your own").'
        )
    if not path.is_file():
        raise ValueError(
            f"`space` file {spec!r} does not exist or is not a file; give an existing {path.suffix} file, or one "
            f"of the known search spaces: {', '.join(SPACES)}."
        )
    where = f"`space` file {spec!r}"
    if path.suffix == ".toml" and not FILE_NAME.match(path.stem):
        raise ValueError(
            f"{where}: its name without .toml names the space and the study's folder, so it must be 1-81 letters, "
            f"digits, '.', '_' or '-', starting with a letter or digit, but got {path.stem!r}; rename the file."
        )
    space = read_space(path, where) if path.suffix == ".toml" else _recorded(path, where)
    check_values(space, where)
    return space


def space_from_record(block: object, where: str) -> SearchSpace:
    """The space that a study.json's `space` block records (SearchSpace.to_dict).

    Raises:
        ValueError: no such block, or one that breaks a rule (a study.json written before spaces were recorded
            whole holds only their names).
    """
    if not isinstance(block, dict) or not isinstance(block.get("name"), str):
        raise ValueError(f"{where} records no search space; give a study.json that study.run wrote.")
    return space_from_dict({k: v for k, v in block.items() if k != "name"}, block["name"], where)


def saved_space_setting(spec: str, study_json: Path) -> str:
    """The `space` setting that brings back a study's own space: a built-in name as it is; for a file, the
    study.json that recorded the file's contents (the file may have changed or gone since)."""
    return spec if spec in SPACES else str(study_json)


def _recorded(path: Path, where: str) -> SearchSpace:
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{where} is not valid JSON ({e}); give a study.json that study.run wrote.") from None
    return space_from_record(study.get("space") if isinstance(study, dict) else None, where)


__all__ = ["SPACES", "SearchSpace", "get_space", "saved_space_setting", "space_from_record"]
