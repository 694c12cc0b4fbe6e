"""What every `python -m study.*` command shares: the exit codes and how an error becomes one.

A command's `main(argv)` parses its arguments, then hands its work to `run_command`, which sets up the console
and turns what the work raises into one message and an exit code:

- bad input (a setting, a data file, a results folder; see BAD_INPUT): the message, exit 2;
- an exception with an `exit_code` attribute (an interrupted study, a results write that failed): its message,
  that code;
- Ctrl-C: exit 130;
- anything else: the traceback in the log, exit 1.

The console (stderr) and logging setup live in console.py; stdout stays free for what a command is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from study.config import ConfigError
from study.console import setup_console
from study.results import ResultsError
from trainables.data import DataError

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES_HELP = "exit codes: 0 done, 2 bad input or settings (nothing written), 130 interrupted, 1 other errors"

BAD_INPUT: tuple[type[BaseException], ...] = (ConfigError, DataError, ResultsError)

log = logging.getLogger(__name__)


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
            if code == EXIT_INTERRUPTED:
                print_error(console, str(e), style="yellow", label="interrupted:")
            else:
                print_error(console, str(e))
            return code
        log.exception("%s failed: %s", what, e)
        return EXIT_ERROR
    return EXIT_OK
