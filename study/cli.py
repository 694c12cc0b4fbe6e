"""What every `python -m study.*` command shares: its argument parser, the exit codes, how an error becomes one.

A command's `main(argv)` parses its arguments with a CommandParser, then hands its work to `run_command`, which
sets up the console (console.py; stderr, so stdout stays free for what a command is asked for) and turns
what the work raises into one message and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from study.console import setup_console
from study.results import ResultsError
from trainables.data import DataError
from trainables.settings import ConfigError

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = "exit codes: 0 done, 2 bad input or settings (nothing written), 130 interrupted, 1 other errors"

BAD_INPUT: tuple[type[BaseException], ...] = (ConfigError, DataError, ResultsError)

log = logging.getLogger(__name__)


class CommandParser(argparse.ArgumentParser):
    """The argument parser of a command, with one change: an option's value may start with '-'.

    argparse reads a word that starts with '-' as an option unless it looks like a negative number, so
    `--label-map -1=NEGATIVE,0=NEUTRAL` would fail with "expected one argument". Here an option that takes a
    value and a following word that starts with a single '-' and is not an option become `--option=word`.
    """

    def __init__(self, prog: str, description: str, epilog: str):
        fmt = argparse.RawDescriptionHelpFormatter
        super().__init__(prog=prog, description=description, epilog=epilog, formatter_class=fmt)

    def set_help(self, dest: str, text: str) -> None:
        """Replace the help of the option that stores `dest`, for a text only the command knows (a registry's)."""
        next(a for a in self._actions if a.dest == dest).help = text

    def parse_known_args(self, args: Sequence[str] | None = None, namespace=None):
        options = {s for a in self._actions for s in a.option_strings}  # groups' options included
        takes_value = {s for a in self._actions if a.nargs is None for s in a.option_strings}  # exactly one value
        words: list[str] = []
        for word in sys.argv[1:] if args is None else args:
            dash_value = word.startswith("-") and not word.startswith("--") and word not in options
            if dash_value and words and words[-1] in takes_value and "--" not in words:
                words[-1] = f"{words[-1]}={word}"
            else:
                words.append(word)
        return super().parse_known_args(words, namespace)


def print_error(console: Console, message: str, style: str = "bold red", label: str = "error:") -> None:
    """One message on the console, never wrapped (a log file or a test reads it whole)."""
    console.print(f"[{style}]{label}[/] {escape(message)}", soft_wrap=True)


def run_command(
    what: str,
    work: Callable[[Console], None],
    bad_input: tuple[type[BaseException], ...] = (),
    interrupted: str = "interrupted",
) -> int:
    """Run a command's work and return its exit code.

    Args:
        what: the command's name for the log, e.g. "study", "report".
        work: does the command's work, printing through the console it is given.
        bad_input: exception types that mean bad input here, beside BAD_INPUT.
        interrupted: what to say on Ctrl-C.

    Returns:
        EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_ERROR or an exception's own `exit_code`.
    """
    console = setup_console()
    try:
        work(console)
    except (*BAD_INPUT, *bad_input) as e:
        print_error(console, str(e))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print_error(console, interrupted, style="yellow", label="interrupted:")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last line of defence: say what failed
        code = getattr(e, "exit_code", None)
        if isinstance(code, int):
            said_as = {"style": "yellow", "label": "interrupted:"} if code == EXIT_INTERRUPTED else {}
            print_error(console, str(e), **said_as)
            return code
        log.exception("%s failed: %s", what, e)
        return EXIT_ERROR
    return EXIT_OK
