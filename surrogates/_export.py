"""A trained surrogate as a serialised ``jax.export`` program: the stepper, runnable without byai.

The exported function is the stepper contract on one unbatched state,
normalisation included: ``step(u) -> u_next`` with ``u`` of shape
``(*grid, C)`` (or ``step(u, p)`` for a model trained with per-sample physics
parameters ``p`` of shape ``(P,)``); a model that takes ``I > 1`` input frames
steps a window ``w`` ``(I, *grid, C)`` of the last ``I`` states, oldest first,
and returns the window one step later (``w[1:]`` and the new state), as
:func:`surrogates.as_stepper` does. One step spans ``stride`` saved frames of
the training data, ``dt`` in the PDE's time units (both in the metadata). Its inputs and output are float32, so it
runs in a default JAX session (no ``jax_enable_x64``); inside, the
normalisation is computed in float64 as :func:`surrogates.as_stepper` does, and
the result matches it to float32 rounding. Load and call it with::

    exported = jax.export.deserialize(open("model.jaxexport", "rb").read())
    u_next = exported.call(u)            # u: float32 (*grid, C)

``export_stepper`` also returns the metadata that ``byai export`` writes beside
the program (shapes, dtypes, the model's PDE and grid, the checkpoint it came from).
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import CheckpointError
from ._stepper import as_stepper, load

FORMAT = "byai.stepper.jax_export"


def export_stepper(model_dir, *, best: bool = True) -> tuple[bytes, dict]:
    """``(program, metadata)``: the serialised ``jax.export`` stepper of a byai model folder and its description.

    Raises ``CheckpointError`` for a folder that is not a usable model or whose grid is unknown.
    """
    model, stats, info = load(model_dir, best=best)
    grid = info.get("grid_shape")
    if grid is None:
        raise CheckpointError(f"{model_dir}: byai_model.json does not record the grid the model was trained on")
    window = int(model.input_steps)
    shape = (*(int(n) for n in np.atleast_1d(grid)), int(np.size(stats.mean)))
    state = jax.ShapeDtypeStruct(shape if window == 1 else (window, *shape), jnp.float32)
    input_stats = info.get("input_stats")
    specs = [state]
    if model.num_params:
        specs.append(jax.ShapeDtypeStruct((model.num_params,), jnp.float32))

        def step(u, p):
            return as_stepper(model, stats, params=p, input_stats=input_stats)(u).astype(jnp.float32)
    else:
        stepper = as_stepper(model, stats, input_stats=input_stats)

        def step(u):
            return stepper(u).astype(jnp.float32)

    program = bytes(jax.export.export(jax.jit(step))(*specs).serialize())
    meta = {
        "format": FORMAT, "call": f"step({'u' if window == 1 else 'w'}{', p' if model.num_params else ''})",
        "input": {"u": {"shape": list(state.shape), "dtype": "float32"}},
        "output": {"shape": list(state.shape), "dtype": "float32"},
        "pde": info.get("pde"), "pde_params": info.get("pde_params"), "grid_shape": info.get("grid_shape"),
        "grid_length": info.get("grid_length"), "problem": info.get("problem", "trajectory"),
        "window": window, "stride": info.get("stride", 1), "dt": info.get("dt"),
        "step": info.get("step"), "checkpoint": info.get("checkpoint"), "dataset_sha256": info.get("dataset_sha256"),
        "program_sha256": hashlib.sha256(program).hexdigest(), "jax_version": jax.__version__,
    }
    if model.num_params:
        meta["input"]["p"] = {"shape": [model.num_params], "dtype": "float32"}
    return program, meta
