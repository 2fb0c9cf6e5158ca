"""The click CLI: one module per group of commands; ``main`` maps errors to exit codes."""

from gpuplan.optimizer.cli.main import main

__all__ = ["main"]
