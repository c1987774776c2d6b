"""Errors that carry a one-sentence message meant for the user, not a traceback."""


class InputError(ValueError):
    """Bad user input (file, mask, parameter, model id); str(err) says what to do."""


class Cancelled(RuntimeError):
    """The caller asked the running edit to stop; raised between sampler steps."""


class JobFailed(RuntimeError):
    """A job could not be run (not the input's fault, e.g. its worker was lost); str(err) is one sentence."""
