"""The one error type of the models layer: bad input, reported as one line."""


class InputError(ValueError):
    """A config, model id or argument the user must fix; the message names the file and field."""
