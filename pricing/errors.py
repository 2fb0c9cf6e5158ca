"""The one error type of the pricing layer: bad input, reported as one line."""


class InputError(ValueError):
    """An offer table, tier or price the user must fix; the message names the file and field."""
