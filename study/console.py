"""The terminal of every command: one rich console on stderr, logging through it, third-party chatter quieted.

stdout stays free for what a command is asked for (a results path, `--json`); everything else goes to stderr.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

QUIET = ("ray", "optuna", "gensim", "filelock", "matplotlib", "PIL")


def setup_console() -> Console:
    """A stderr console, with INFO logging rendered through it ("[12:00:00] INFO Writing results <path=...>")."""
    console = Console(stderr=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return console
