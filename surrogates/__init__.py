"""byai surrogates: flax.nnx neural operators trained on byai data, checkpoints, steppers, hybrid stepping.

``FNO``, ``UNet``, ``DilatedResNet`` (channels-last, 1D and 2D) wrapped by ``Surrogate``
(stacked frames, physics parameters, coordinates, residual update); ``train`` (optax AdamW,
data parallel over a ``('data',)`` mesh, orbax checkpoints with exact resume);
``as_stepper``/``load``/``load_stepper`` turn a trained model into the stepper ``u -> u``.
"""

import solvers  # noqa: F401  (float64 JAX: steppers return float64 states)

from ._checkpoint import CheckpointError, read_metadata
from ._config import ModelConfig, TrainConfig
from ._models import FNO, DilatedResNet, SpectralConv, Surrogate, UNet, count_params
from ._stepper import as_stepper, load, load_stepper
from ._train import (TrainingDivergedError, TrainResult, build_model, build_optimizer, jit_init, learning_rates,
                     learning_rate_schedule, make_optimizer, make_steps, rollout_loss, train)
from ._hybrid import HybridConfig, HybridState, HybridStepper, HybridTrajectory  # noqa: E402,F401  (hybrid engineer)

__all__ = [
    "ModelConfig", "TrainConfig", "FNO", "UNet", "DilatedResNet", "SpectralConv", "Surrogate", "count_params",
    "train", "TrainResult", "TrainingDivergedError", "CheckpointError", "build_model", "make_optimizer",
    "make_steps", "rollout_loss", "build_optimizer", "jit_init", "learning_rates", "learning_rate_schedule",
    "as_stepper", "load", "load_stepper", "read_metadata",
    "HybridConfig", "HybridState", "HybridStepper", "HybridTrajectory",
]
