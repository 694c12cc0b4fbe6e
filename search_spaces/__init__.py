"""Registry of named search spaces: `get_space(name)`. The spaces themselves live in rnn.py."""

from search_spaces.rnn import DEFAULT, SEED, SMOKE, WIDE, SearchSpace

SPACES: dict[str, SearchSpace] = {s.name: s for s in (DEFAULT, SEED, SMOKE, WIDE)}


def get_space(name: str) -> SearchSpace:
    """The search space called `name`.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name not in SPACES:
        known = ", ".join(f"{n} ({s.description})" for n, s in SPACES.items())
        raise ValueError(f"`space` must be one of the known search spaces, but got {name!r}. Known: {known}.")
    return SPACES[name]


__all__ = ["SPACES", "SearchSpace", "get_space"]
