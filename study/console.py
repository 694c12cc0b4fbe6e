"""The terminal of every command: one rich console on stderr, logging through it, third-party chatter quieted.

stdout stays free for what a command is asked for (a results path, `--json`); everything else goes to stderr.
On a terminal rich lays lines out to the window's width; anywhere else (a log file, `nohup`, a pipe) every
printed line and log record is written whole, never wrapped at 80 columns or padded, so a command in it can
be copied and a line found with grep.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

QUIET = ("ray", "optuna", "gensim", "filelock", "matplotlib", "PIL")
LOG_WIDTH = 1000  # columns of a console that is no terminal: tables take their natural width, nothing wraps


def setup_console() -> Console:
    """A stderr console, with INFO logging rendered through it ("[12:00:00] INFO     Writing results <path=...>")."""
    console = Console(stderr=True)
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:  # RichHandler pads every record to the console's width: a plain line instead
        console = Console(stderr=True, soft_wrap=True, width=LOG_WIDTH)
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(message)s", datefmt="[%X]"))
    logging.basicConfig(level=logging.INFO, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return console
