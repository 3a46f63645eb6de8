"""The one error of the edge runner: an input it cannot use, shown as one line and exit code 2."""


class EdgeInputError(ValueError):
    """A model, metadata file, video or camera the runner cannot use (the message names it)."""
