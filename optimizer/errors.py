"""Errors of the decision layer and the one tuple the CLI maps to exit code 2."""

from gpuplan.hardware.errors import InputError as HardwareInputError
from gpuplan.models.errors import InputError as ModelInputError
from gpuplan.pricing.errors import InputError as PricingInputError

from gpuplan.safeio import UnreadableInput


class InputError(ValueError):
    """A workload file, option or combination the user must fix (exit 2)."""


class InfeasibleError(RuntimeError):
    """No plan meets the constraints; the message says which constraint binds (exit 3)."""


INPUT_ERRORS = (InputError, ModelInputError, HardwareInputError, PricingInputError, UnreadableInput)


def located(row: object, err: Exception) -> InputError:
    """``err`` prefixed with the file and row its input was read from (a row's ``_where``, e.g. "measured.csv,
    row 7"), so a row that parses but names something the models refuse is found in one line."""
    where = getattr(row, "_where", "")
    return InputError(f"{where}: {err}" if where else str(err))
