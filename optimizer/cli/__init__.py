"""The click CLI: one module per group of commands; ``main`` maps errors to exit codes."""

import sys

try:  # the imports take a second (pandas, OR-Tools): Ctrl-C during them is an interrupt too, not a traceback
    from gpuplan.optimizer.cli.main import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted: nothing written\n")
    sys.exit(130)

__all__ = ["main"]
