"""The one error type of the hardware layer: bad input, reported as one line."""


class InputError(ValueError):
    """A table row, GPU id or format the user must fix; the message names the file and field."""
