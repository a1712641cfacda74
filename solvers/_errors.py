"""byai's error classes: one base for every error a user can act on.

``ByaiError`` is what the command line prints as one line (exit 2): a bad
argument, file or config value, or a computation that cannot keep its promise
(a grid too coarse for the tolerance, a diverging solve). Any other exception
is a bug and keeps its traceback (exit 3). Each package derives its own errors
from it (``DatasetError``, ``AuditError``, ``ConfigError``, ``CheckpointError``).
"""


class ByaiError(Exception):
    """A user-facing error whose message says, in one sentence, what is wrong and what to do."""


class InputError(ByaiError, ValueError):
    """An argument, setting or file content that cannot be used (the message names it)."""


class ResolutionError(ByaiError, RuntimeError):
    """The grid cannot represent the solution to the requested tolerance."""


class SolverDivergedError(ByaiError, RuntimeError):
    """The solution became non-finite or the step size collapsed."""
