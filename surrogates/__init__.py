"""byai surrogates (see DESIGN.md)."""
from ._hybrid import HybridConfig, HybridState, HybridStepper, HybridTrajectory  # noqa: E402,F401  (hybrid engineer)
