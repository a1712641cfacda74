"""The datasets package's error."""

from solvers import ByaiError


class DatasetError(ByaiError):
    """A dataset file is missing, truncated, corrupt, foreign, mismatched or fails its checksum."""
