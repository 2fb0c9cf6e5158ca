"""Entry point: every command registered on one click group; errors mapped to exit codes.

Exit codes: 0 success; 2 bad input (one line naming the file, row or field); 3 infeasible.
"""

from __future__ import annotations

import sys

import click
import yaml
from gpuplan.optimizer.cli import calibrate, catalog, deploy, fit, plan, whatif  # noqa: F401  (registers)
from gpuplan.optimizer.cli.common import cli
from gpuplan.optimizer.errors import INPUT_ERRORS, InfeasibleError
from pydantic import ValidationError


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; never a traceback for bad input."""
    try:
        cli.main(args=argv, prog_name="gpuplan", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.UsageError as e:  # bad option or value: one line
        click.echo(f"error: {_one_line(Exception(e.format_message()))}", err=True)
        return 2
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except INPUT_ERRORS as e:
        click.echo(f"error: {_one_line(e)}", err=True)
        return 2
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        click.echo(f"error: {e.title}: field '{where}': {first['msg']}", err=True)
        return 2
    except yaml.YAMLError as e:
        click.echo(f"error: {_one_line(e)}", err=True)
        return 2
    except InfeasibleError as e:
        click.echo(f"infeasible: {e}", err=True)
        return 3
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
