"""byai surrogates: flax.nnx neural operators trained on byai data, checkpoints, steppers, hybrid stepping.

``FNO``, ``UNet``, ``DilatedResNet`` (channels-last, 1D and 2D) wrapped by ``Surrogate``
(stacked frames, physics parameters, coordinates, residual update); ``train`` (optax AdamW,
data parallel over a ``('data',)`` mesh, orbax checkpoints with exact resume), or its pieces
``build_model``, ``build_optimizer`` and ``make_steps`` for a loop of one's own;
``as_stepper``/``load``/``load_stepper`` turn a trained model into the stepper ``u -> u``
(``export_stepper``: the same as a ``jax.export`` program that runs without byai);
``HybridStepper`` lets a guard decide, step by step, between a surrogate and a solver.
A model trained with ``ModelConfig(stride=k)`` steps ``k`` saved frames at a time and records
``stride`` and ``dt`` in its metadata (``load``'s ``info``); a model with ``input_steps > 1`` gives a
window stepper whose state is its last ``input_steps`` states (see ``surrogates._stepper``).
"""

import solvers  # noqa: F401  (float64 JAX: steppers return float64 states)

from ._checkpoint import CheckpointError, read_metadata
from ._config import ModelConfig, TrainConfig
from ._export import export_stepper
from ._hybrid import HybridConfig, HybridState, HybridStepper, HybridTrajectory
from ._models import FNO, DilatedResNet, Surrogate, UNet, count_params
from ._stepper import as_stepper, load, load_stepper
from ._train import TrainingDivergedError, TrainResult, build_model, build_optimizer, make_steps, train

__all__ = [
    "ModelConfig", "TrainConfig", "FNO", "UNet", "DilatedResNet", "Surrogate", "count_params",
    "train", "TrainResult", "build_model", "build_optimizer", "make_steps",
    "as_stepper", "load", "load_stepper", "read_metadata", "export_stepper",
    "HybridConfig", "HybridState", "HybridStepper", "HybridTrajectory",
    "TrainingDivergedError", "CheckpointError",
]
