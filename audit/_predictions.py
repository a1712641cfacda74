"""``audit.run_predictions``: audit rollouts that any model made, given as arrays or as an HDF5 file.

The predictions replace the stepper of :func:`audit.run`: they are rollouts from the test split's
initial conditions (frame 0 is the initial condition), as many frames as the model predicted, and
the audit's later stages (:func:`audit._run._score_rollouts`, the kind's physics, the equal-accuracy
search) run on them unchanged. Two file layouts are read (:func:`read_predictions`): byai's, a dataset
file like the audit's own ``predictions.h5`` (``u`` ``(sample, time, *space, channel)``), and PDEBench's,
an HDF5 dataset ``tensor`` ``(sample, time, x[, y][, channel])`` (no channel axis: one channel).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np

import solvers

from . import _run
from ._config import AuditConfig, AuditError, Requirement
from ._equal_accuracy import check_repeats
from ._progress import echo

ONE_STEP_REASON = ("the predictions are rollouts from frame 0 only: the one-step error from every reference frame "
                   "(the bound a conformal_guard takes) needs the model as a stepper (audit.run, byai audit --model)")
NO_CALIBRATION = ("no calibration predictions were given (--calibration-predictions): the verdict rests on the "
                  "test quantile alone and states no bound for new initial conditions")
IC_RTOL = 2.0**-22  # frame 0 may differ from the test initial condition by float32 rounding (2 ulp of its scale)


def read_predictions(path, state_shape: tuple[int, ...]) -> np.ndarray:
    """``(sample, time, *space, channel)`` float64 predictions from an HDF5 file in byai's or PDEBench's layout.

    Args:
        path: an HDF5 file holding ``u`` ``(sample, time, *space, channel)`` (byai) or ``tensor``
            ``(sample, time, x[, y][, channel])`` (PDEBench; without a channel axis it is one channel).
        state_shape: the test split's ``(*space, channel)``, which tells a PDEBench tensor without a
            channel axis from one with.

    Raises:
        AuditError: naming the file when it is not HDF5 or holds neither dataset.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise AuditError(f"predictions file {path} cannot be read as HDF5 ({' '.join(str(e).split())})") from None
    with f:
        if isinstance(f.get("u"), h5py.Dataset):
            return np.asarray(f["u"][...], dtype=np.float64)
        if isinstance(f.get("tensor"), h5py.Dataset):
            a = np.asarray(f["tensor"][...], dtype=np.float64)
            if a.ndim == len(state_shape) + 1:  # (sample, time, *space): one channel
                a = a[..., None]
            return a
    raise AuditError(f"predictions file {path} holds neither 'u' (byai layout: sample, time, *space, channel) nor "
                     "'tensor' (PDEBench layout: sample, time, x[, y][, channel])")


def check_predictions(pred: np.ndarray, ref: np.ndarray, name: str, split: str) -> np.ndarray:
    """``pred`` as float64 after checking it against the ``(S, T, *space, C)`` reference ``ref``.

    Shape (samples, at least 2 frames, grid, channels), finite values and frame 0 equal to the
    reference's initial conditions up to float32 rounding (``|p - r| <= 2^-22 max|r|`` per sample).

    Raises:
        AuditError: naming ``name`` (the file) and, for values, the first sample at fault.
    """
    pred = np.asarray(pred, dtype=np.float64)
    want = f"({ref.shape[0]}, frames >= 2, {', '.join(map(str, ref.shape[2:-1]))}, {ref.shape[-1]})"
    what = f"{name}: {split} predictions of shape {pred.shape} do not fit the {split} split"
    if pred.ndim != ref.ndim:
        raise AuditError(f"{what}: expected (sample, time, *space, channel) = {want}")
    if pred.shape[0] != ref.shape[0]:
        raise AuditError(f"{what}: {pred.shape[0]} samples, the {split} split has {ref.shape[0]} (one rollout "
                         f"per {split} initial condition, in its order)")
    if pred.shape[1] < 2:
        raise AuditError(f"{what}: {pred.shape[1]} frame(s); frame 0 is the initial condition and at least one "
                         "predicted frame must follow")
    if pred.shape[2:-1] != ref.shape[2:-1]:
        raise AuditError(f"{what}: grid {pred.shape[2:-1]}, the {split} split's is {ref.shape[2:-1]}")
    if pred.shape[-1] != ref.shape[-1]:
        raise AuditError(f"{what}: {pred.shape[-1]} channels, the {split} split has {ref.shape[-1]}")
    bad = ~np.isfinite(pred.reshape(*pred.shape[:2], -1)).all(axis=-1)
    if bad.any():
        i, frame = (int(v) for v in np.argwhere(bad)[0])
        raise AuditError(f"{name}: {split} sample {i} holds non-finite values (NaN or inf) at frame {frame} "
                         f"({int(bad.any(axis=1).sum())} of {pred.shape[0]} samples do): the model diverged, no "
                         "verdict is possible")
    r0 = ref[:, 0].reshape(ref.shape[0], -1)
    diff = np.max(np.abs(pred[:, 0].reshape(ref.shape[0], -1) - r0), axis=1)
    scale = np.max(np.abs(r0), axis=1)
    off = diff > IC_RTOL * scale
    if off.any():
        i = int(np.argmax(off))
        raise AuditError(f"{name}: frame 0 of {split} sample {i} differs from the {split} split's initial condition "
                         f"by {diff[i]:.3g} (max |u0| {scale[i]:.3g}); frame 0 must be the initial condition, "
                         "to float32 rounding, of the same sample in the same order")
    return pred


def run_predictions(pred_test, test, calibration=None, pred_calibration=None,
                    requirement: Requirement | str | None = None, *, config: AuditConfig | None = None,
                    surrogate_seconds: float | None = None, pde=None, pde_classes: tuple = (), out_dir=None,
                    provenance: dict | None = None, repeats: int = 3, quiet: bool = True,
                    stride: int = 1) -> _run.Report:
    """Audit rollouts any model made from the ``test`` initial conditions, as :func:`audit.run` audits a stepper.

    Every metric, tolerance multiple, the PDEBench metrics, the physics and the equal-accuracy search
    are those of :func:`audit.run`, on the given rollouts cut to the horizon (``requirement.horizon``,
    else every frame both the predictions and the test split hold). The conformal bound comes from
    ``pred_calibration`` on the ``calibration`` split; without them ``report.json["conformal"]`` says
    ``"status": "no calibration predictions"`` and the requirement holds when the test quantile is
    within the threshold. The one-step bound needs a stepper and is reported as unavailable.

    Args:
        pred_test: ``(S, T, *space, C)`` rollouts (frame 0 = the test initial condition, ``T >= 2``), or
            the path of an HDF5 file in byai's or PDEBench's layout (:func:`read_predictions`).
        test, calibration: the splits (``xarray.Dataset`` as from ``datasets.open``); ``calibration``
            is used only with ``pred_calibration``.
        pred_calibration: rollouts from the calibration initial conditions (array or path), or None.
        requirement, config, pde, pde_classes, out_dir, provenance, quiet: as in :func:`audit.run`.
        surrogate_seconds: wall time (s) of one rollout as stored (all its frames), scaled linearly to
            the horizon and multiplied by the test samples for the equal-accuracy speedup; None leaves
            the speedup unknown (the solver's side is still measured).
        repeats: timed runs of each solver setting of the equal-accuracy search.
        stride: saved frames between consecutive predicted frames (default 1: the model predicted every saved
            frame); with ``k`` predicted frame ``n`` is compared with reference frame ``n * k``, the horizon
            counts predicted steps and the solver is searched over ``k`` save intervals per step.

    Raises:
        AuditError: predictions that do not fit their split (named by file), calibration predictions
            without a calibration split, and whatever :func:`audit.run` refuses.
        solvers.InputError: a ``surrogate_seconds`` that is not a finite positive number.
    """
    config = config or AuditConfig()
    repeats = check_repeats(repeats)
    if surrogate_seconds is not None and not (isinstance(surrogate_seconds, (int, float))
                                              and math.isfinite(surrogate_seconds) and surrogate_seconds > 0):
        raise solvers.InputError(f"surrogate_seconds must be a finite number of seconds > 0, got {surrogate_seconds!r}")
    if pred_calibration is not None and calibration is None:
        raise AuditError("calibration predictions were given without the calibration split they start from")
    say = (lambda msg: None) if quiet else (lambda msg: echo(f"byai audit: {msg}"))
    stride, _ = _run.check_step(stride, 1, test)
    test, calibration = _run.strided(test, stride), _run.strided(calibration, stride)
    req = _run._requirement(requirement, config)
    state = tuple(test["u"].shape[2:])
    pred, name, files = _array(pred_test, state, "the test predictions")
    cal_pred = cal_name = None
    if pred_calibration is not None:
        cal_pred, cal_name, cal_files = _array(pred_calibration, state, "the calibration predictions")
        files.update({f"calibration_{k}": v for k, v in cal_files.items()})
    frames = pred.shape[1] if pred.ndim >= 2 else 0
    if req.horizon is not None and frames >= 2 and req.horizon > frames - 1:
        raise AuditError(f"the requirement's horizon {req.horizon} exceeds the {frames - 1} steps {name} holds")
    inputs = _run._load(test, calibration if cal_pred is not None else None, req, config, pde=pde,
                        pde_classes=tuple(pde_classes), model_info=None, provenance={**files, **(provenance or {})},
                        with_params=False, frames=max(frames, 2), stride=stride)
    h = inputs.horizon
    pred = check_predictions(pred, inputs.ref, name, "test")
    if cal_pred is not None:
        cal_pred = check_predictions(cal_pred, inputs.cal_ref, cal_name, "calibration")
        if cal_pred.shape[1] < h + 1:
            raise AuditError(f"{cal_name}: {cal_pred.shape[1] - 1} predicted steps, the horizon is {h}")
        cal_pred = cal_pred[:, :h + 1]
    else:
        cal_pred = np.zeros((0, *pred.shape[1:]))[:, :h + 1]
    seconds = None if surrogate_seconds is None else float(surrogate_seconds) * pred.shape[0] * h / (frames - 1)
    rollouts = _run.Rollouts(pred[:, :h + 1], cal_pred, inputs.ref[:, :h + 1], inputs.cal_ref[:, :h + 1], seconds)
    scores = _run._score_rollouts(inputs, rollouts, None, ONE_STEP_REASON,
                                  None if pred_calibration is not None else NO_CALIBRATION)
    physics = inputs.problem.physics(rollouts.pred, rollouts.ref, inputs.dt, scores.tolerance,
                                     config.residual_substeps, say)
    equal = _run._equal_accuracy_stage(inputs, rollouts, scores, None, repeats, say, quiet=quiet)
    if seconds is None:
        equal = dataclasses.replace(equal, seconds_reason="the surrogate's wall time is unknown: no "
                                    "surrogate_seconds (--surrogate-seconds) per rollout was given")
    report = _run.Report(inputs, rollouts, scores, physics, equal)
    if out_dir is None:
        return report
    from ._report import write_outputs

    written = write_outputs(Path(out_dir), report.summary, rollouts.pred, rollouts.ref, inputs.t[:h + 1], test,
                            scores.values, scores.tolerance, scores.score, scores.cal_score)
    return dataclasses.replace(report, files=written)


def _array(pred, state: tuple[int, ...], default_name: str) -> tuple[np.ndarray, str, dict]:
    """``(array, name for messages, provenance entries)`` of predictions given as an array or a file path."""
    if isinstance(pred, (str, Path)):
        path = Path(pred)
        if not path.is_file():
            raise AuditError(f"predictions file {path} does not exist")
        return read_predictions(path, state), str(path), {"predictions_file": str(path.resolve()),
                                                          "predictions_sha256": _file_sha256(path)}
    return np.asarray(pred, dtype=np.float64), default_name, {}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
