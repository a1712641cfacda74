"""What the surrogate cost to make, and after how many rollouts it pays that back (``report.json["cost"]``).

The upfront cost is the wall time ``byai generate`` recorded in the train, val and calibration split files
(their ``cost`` attribute) plus the wall time ``byai train`` recorded in ``byai_model.json``. The running cost
is the per-rollout wall time (one test sample over the audit's horizon, timed in a batch of the test split) of
the surrogate and of the solver at equal accuracy, both from the audit's equal-accuracy stage. The surrogate
pays back after ``N = ceil(upfront / (solver - surrogate))`` rollouts when it is faster per rollout; when it is
slower it never does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

GENERATION_SPLITS = ("train", "val", "calibration")  # the data that made (and calibrated) the surrogate
NEVER = "the surrogate is slower per rollout than the solver at equal accuracy: it never pays back"
UNKNOWN = "what the surrogate cost to make is unknown"


def breakeven(upfront_seconds: float | None, solver_seconds: float,
              surrogate_seconds: float) -> tuple[int | None, str | None]:
    """``(N, None)``: the rollouts after which ``upfront_seconds`` are paid back, or ``(None, reason)``.

    ``N = ceil(upfront / (solver - surrogate))`` with per-rollout seconds of the solver at equal accuracy and of
    the surrogate. Never (``None``, :data:`NEVER`) when the surrogate is not faster; unknown (``None`` with the
    reason) when ``upfront_seconds`` is ``None``.
    """
    if not (math.isfinite(solver_seconds) and math.isfinite(surrogate_seconds)):
        return None, "a per-rollout time is not finite"
    if surrogate_seconds >= solver_seconds:
        return None, NEVER
    if upfront_seconds is None:
        return None, UNKNOWN
    return math.ceil(upfront_seconds / (solver_seconds - surrogate_seconds)), None


def generation_cost(data_dir) -> dict:
    """``{split: cost}`` for the train, val and calibration files of ``data_dir`` (their ``cost`` attribute,
    ``None`` when a file records none; a val file that does not exist is left out: it has no samples)."""
    import h5py

    out = {}
    for split in GENERATION_SPLITS:
        path = Path(data_dir) / f"{split}.h5"
        if split == "val" and not path.exists():
            continue
        try:
            with h5py.File(path, "r") as f:
                out[split] = _record(f.attrs.get("cost"))
        except OSError:
            out[split] = None
    return out


def training_cost(model_dir) -> dict | None:
    """``byai_model.json["cost"]`` of ``model_dir`` (``None`` when it records none)."""
    try:
        return _record(json.loads((Path(model_dir) / "byai_model.json").read_text()).get("cost"))
    except (OSError, ValueError, AttributeError):
        return None


def _record(value) -> dict | None:
    """A recorded cost as a dict (JSON text decoded), ``None`` when absent or unreadable."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _seconds(record: dict | None) -> float | None:
    v = (record or {}).get("wall_seconds")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def cost_json(generation: dict | None, training: dict | None, equal_accuracy: dict, n_test: int,
              horizon: int) -> dict:
    """``report.json["cost"]`` from the recorded costs and ``report.json["equal_accuracy"]``, with its
    :func:`sentence`.

    Args:
        generation: ``{split: cost record or None}`` (:func:`generation_cost`), or None when not given.
        training: the model's cost record (:func:`training_cost`), or None.
        equal_accuracy: the audit's equal-accuracy summary (seconds for the whole test split).
        n_test: test samples the seconds are for; horizon: rollout steps.
    """
    out = _cost_fields(generation, training, equal_accuracy, n_test, horizon)
    return {**out, "sentence": sentence(out)}


def _cost_fields(generation, training, equal_accuracy: dict, n_test: int, horizon: int) -> dict:
    gen = None
    if generation:
        parts = [_seconds(r) for r in generation.values()]
        gen = None if any(p is None for p in parts) else sum(parts)
    train = _seconds(training)
    upfront = None if gen is None or train is None else gen + train
    out = {"generation_seconds": gen, "training_seconds": train, "upfront_seconds": upfront,
           "generation": generation, "training": training,
           "rollout": f"one test sample over {horizon} steps, timed in a batch of {n_test}",
           "surrogate_seconds_per_rollout": None, "solver_seconds_per_rollout": None, "breakeven": None}
    unknown = [name for name, v in (("generation", gen), ("training", train)) if v is None]
    surrogate = equal_accuracy.get("surrogate_seconds")
    if isinstance(surrogate, int | float):
        out["surrogate_seconds_per_rollout"] = surrogate / n_test
    else:
        out["reason"] = "the surrogate's rollouts were not timed"
        return out
    if equal_accuracy.get("status") != "measured" or equal_accuracy.get("solver_seconds") is None:
        why = equal_accuracy.get("reason") or f"the equal-accuracy comparison is {equal_accuracy.get('status')}"
        out["reason"] = f"no solver time at equal accuracy ({why})"
        return out
    solver = equal_accuracy["solver_seconds"] / n_test
    out["solver_seconds_per_rollout"] = solver
    n, reason = breakeven(upfront, solver, out["surrogate_seconds_per_rollout"])
    bound = equal_accuracy.get("speedup_bound", "exact")
    if reason == NEVER and bound == "lower":  # the solver's time is only a lower bound of its cost
        reason = ("no solver setting tried reached the surrogate's accuracy, and the most accurate one is faster "
                  "per rollout than the surrogate; add finer settings to audit.equal_accuracy to decide")
    elif reason == UNKNOWN:
        reason = (f"the {' and '.join(unknown)} cost is not known (not given to the audit, or data or model "
                  "made without a cost record)")
    out["breakeven"] = n
    if n is None:
        out["reason"] = reason
    else:  # the solver's time is an upper bound of its cost ("upper") or a lower one ("lower")
        out["breakeven_bound"] = {"exact": "exact", "upper": "at least", "lower": "at most"}.get(bound, "exact")
    return out


def _s(seconds: float) -> str:
    return f"{seconds:.3g} s"


def sentence(cost: dict) -> str:
    """The break-even in one sentence, e.g. ``break-even after 1,234 rollouts (generation 32 s + training 67 s)``
    or ``break-even: never (the solver at equal accuracy is 170x faster per rollout)``."""
    n = cost.get("breakeven")
    if n is not None:
        words = {"at least": "at least ", "at most": "at most "}.get(cost.get("breakeven_bound"), "")
        return (f"break-even after {words}{n:,} rollouts (generation {_s(cost['generation_seconds'])} + training "
                f"{_s(cost['training_seconds'])}, repaid at "
                f"{_s(cost['solver_seconds_per_rollout'] - cost['surrogate_seconds_per_rollout'])} per rollout "
                "against the solver at equal accuracy)")
    if cost.get("reason") == NEVER:
        ratio = cost["surrogate_seconds_per_rollout"] / cost["solver_seconds_per_rollout"]
        return f"break-even: never (the solver at equal accuracy is {ratio:.3g}x faster per rollout)"
    return f"break-even: unknown ({cost.get('reason') or 'not measured'})"
