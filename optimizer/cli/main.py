"""Entry point: every command registered on one click group; every error mapped to an exit code.

Exit codes: 0 success; 2 bad input (one line naming the file, row or field); 3 infeasible;
130 interrupted (Ctrl-C or SIGTERM: nothing is written). ``GPUPLAN_DEBUG=1`` re-raises unexpected
exceptions with their traceback instead of the one-line "internal error".
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

import click
from gpuplan.optimizer.cli import calibrate, catalog, deploy, fit, plan, whatif  # noqa: F401  (registers)
from gpuplan.optimizer.cli.common import cli
from gpuplan.optimizer.errors import INPUT_ERRORS, InfeasibleError
from gpuplan.optimizer.output import terminal_safe
from pydantic import ValidationError

EXIT_INPUT, EXIT_INFEASIBLE, EXIT_INTERRUPTED = 2, 3, 130
DEBUG_ENV = "GPUPLAN_DEBUG"


def one_line(text: object, limit: int = 600) -> str:
    """Whitespace folded to single spaces, control characters replaced, at most ``limit`` characters."""
    flat = terminal_safe(" ".join(str(text).split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _say(prefix: str, text: object) -> None:
    click.echo(f"{prefix}: {one_line(text)}", err=True)


def _validation_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{err.title}: field '{where}': {first['msg']}"


def _os_error_line(err: OSError) -> str:
    name = err.filename if err.filename is not None else ""
    return f"{name}: {err.strerror or err}" if name else str(err.strerror or err)


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into the same unwinding as Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (temporary files removed, worker pools shut down); main thread only."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="gpuplan", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:
        _say("error", e.format_message())
        return EXIT_INPUT
    except click.ClickException as e:
        _say("error", e.format_message())
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted: nothing written", err=True)
        return EXIT_INTERRUPTED
    except INPUT_ERRORS as e:
        _say("error", e)
        return EXIT_INPUT
    except ValidationError as e:
        _say("error", _validation_line(e))
        return EXIT_INPUT
    except InfeasibleError as e:
        click.echo(f"infeasible: {terminal_safe(str(e), keep_newlines=True)}", err=True)
        return EXIT_INFEASIBLE
    except BrokenPipeError:
        with contextlib.suppress(OSError):  # the reader left: stop quietly, as head(1) expects
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # read-only folder, full disk, file name too long …
        _say("error", _os_error_line(e))
        return EXIT_INPUT
    except (MemoryError, RecursionError) as e:
        _say("error", f"input too large or too deeply nested ({type(e).__name__})")
        return EXIT_INPUT
    except Exception as e:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        _say("error", f"internal error ({type(e).__name__}: {e}); rerun with {DEBUG_ENV}=1 for the traceback "
                      "and report it")
        return EXIT_INPUT
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; never a traceback for bad input (unless ``GPUPLAN_DEBUG=1``)."""
    with _sigterm_as_interrupt():
        return _run(argv)


if __name__ == "__main__":
    sys.exit(main())
