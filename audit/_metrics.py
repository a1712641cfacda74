"""Error metrics of predicted trajectories against reference trajectories (float64, numpy).

Arrays are ``(sample, time, *space, channel)``. Every metric is computed per
sample and per frame; with ``N`` grid points, ``C`` channels, ``e = pred - ref``
and means over the spatial axes:

==============  =====================================================================================
``rmse``        ``sqrt(mean_{x,c} e^2)``: the root mean square error over grid points and channels,
                the same norm as the solver's error bound (PDEBench "RMSE").
``rel_l2``      ``||e||_2 / ||ref||_2`` over grid points and channels jointly (the relative L2 error
                of the neural-operator literature, e.g. Li et al. 2021).
``nrmse``       PDEBench "nRMSE": per channel ``sqrt(mean_x e^2) / sqrt(mean_x ref^2)``, then the mean
                over channels (equal to ``rel_l2`` for one channel).
``max_error``   PDEBench "Max error": ``max_{x,c} |e|``.
``vrmse``       The Well "VRMSE": per channel ``sqrt(mean_x e^2 / (var_x(ref) + 1e-7))``, mean over
                channels.
``mass_error``  PDEBench "cRMSE" (conserved quantity) of one sample: per channel
                ``|mean_x pred - mean_x ref|`` (the box-averaged mass), RMS over channels (PDEBench's table
                value aggregates by RMS over samples: ``crmse`` of :func:`pdebench_metrics`).
``energy_error`` relative error of the energy density ``E = mean_{x} sum_c u^2 / 2``:
                ``|E(pred) - E(ref)| / E(ref)``; reported only for PDEs that conserve ``E``.
``low_freq``,   PDEBench "fRMSE" bands, made Parseval-consistent: with ``e_hat`` the full FFT over the
``mid_freq``,   spatial axes and ``|m|`` the (radial) integer mode number,
``high_freq``   ``sqrt(sum_{|m| in band, c} |e_hat|^2 / (N^2 C))`` for the bands ``|m| < lo``,
                ``lo <= |m| < hi``, ``|m| >= hi`` (PDEBench's ``lo=4, hi=12`` by default), so that
                ``low^2 + mid^2 + high^2 = rmse^2``.
``correlation`` Pearson correlation of pred and ref over grid points, per channel, mean over channels
                (The Well's "pearson"); 1 for two constant fields that agree, 0 when one is constant.
``brmse``       PDEBench "bRMSE" (RMSE on the boundary): per channel ``sqrt(mean_{x in B} e^2)`` over the
                outermost grid points of each spatial axis, ``B`` = the faces at index 0 and ``n_a - 1`` of
                every axis ``a`` (a point on several faces counted once per face: ``2 nx + 2 ny`` points in
                2-D, ``(e[0]^2 + e[-1]^2) / 2`` in 1-D), then the mean over channels. Its mean over samples
                and steps is PDEBench's bRMSE (1-D and 2-D; PDEBench's 3-D branch sums the channels inside
                the root, so it equals this there for one channel only).
==============  =====================================================================================

``correlation_time`` (per sample): the number of leading rollout steps
``1, 2, ...`` whose correlation stays ``>= threshold`` (0.8 by default, as in
The Well and PDEArena); it equals the horizon when the correlation never drops
(``censored``).

PDEBench's tables aggregate over samples inside some metrics, so their values
are not means of per-sample metrics. :func:`pdebench_metrics` computes them as
``pdebench.models.metrics.metric_func`` does (``Lx = Ly = Lz = 1``, as its
training scripts call it; ``iLow = 4``, ``iHigh = 12``), per frame, averaged over
channels (its ``if_mean`` then also averages over the frames, which the report
does over steps ``1..horizon``):

``rmse``        ``mean_{b,c} sqrt(mean_x e^2)`` (per channel, unlike byai's ``rmse`` joint over channels).
``nrmse``       ``mean_{b,c} sqrt(mean_x e^2) / sqrt(mean_x ref^2)``.
``crmse``       "cRMSE": ``mean_c sqrt(mean_b (mean_x pred - mean_x ref)^2)``: the RMS over samples of the
                error of the box mean (the conserved quantity), not its mean over samples.
``max_error``   ``mean_c max_{b,x} |e|``: the worst point over all samples.
``brmse``       ``mean_{b,c}`` of the boundary RMSE above.
``frmse_low``,  "fRMSE": with ``e_hat`` the discrete Fourier transform over space (1-D: ``rfft``, modes
``frmse_mid``,  ``k = 0..nx/2``; 2-D/3-D: ``fftn``, only the non-negative modes ``0 <= i_a < n_a/2``, binned
``frmse_high``  by ``k = floor(sqrt(sum_a i_a^2))``, bins ``k < min_a n_a/2`` summing ``|e_hat|^2``),
                ``F_k = sqrt(mean_b P_k) / prod_a n_a`` (``P_k = |e_hat_k|^2``, or the bin's sum), then per
                channel the mean of ``F_k`` over ``k < 4`` (low), ``4 <= k < 12`` (mid), ``k >= 12`` (high),
                and the mean over channels. Not Parseval-normalised, unlike ``low_freq``/``mid_freq``/
                ``high_freq``: the bands average amplitudes over their modes.
"""

from __future__ import annotations

import numpy as np

VRMSE_EPS = 1e-7  # The Well's epsilon in the variance-scaled RMSE

DEFINITIONS = {
    "rmse": "sqrt(mean over grid points and channels of e^2), e = pred - ref, per sample and frame",
    "rel_l2": "||e||_2 / ||ref||_2 over grid points and channels jointly",
    "nrmse": "mean over channels of sqrt(mean_x e^2) / sqrt(mean_x ref^2) (PDEBench nRMSE)",
    "max_error": "max over grid points and channels of |e|",
    "vrmse": "mean over channels of sqrt(mean_x e^2 / (var_x(ref) + 1e-7)) (The Well VRMSE)",
    "mass_error": "RMS over channels of |mean_x pred - mean_x ref| (one sample's cRMSE)",
    "energy_error": "|E(pred) - E(ref)| / E(ref), E = mean_x sum_c u^2 / 2 (PDEs conserving E only)",
    "low_freq": "sqrt(sum over |m| < lo and channels of |fftn(e)|^2 / (N^2 C)), Parseval-normalised",
    "mid_freq": "sqrt(sum over lo <= |m| < hi and channels of |fftn(e)|^2 / (N^2 C)), Parseval-normalised",
    "high_freq": "sqrt(sum over |m| >= hi and channels of |fftn(e)|^2 / (N^2 C)), Parseval-normalised; "
                 "low^2 + mid^2 + high^2 = rmse^2",
    "correlation": "mean over channels of the Pearson correlation of pred and ref over grid points",
    "brmse": "mean over channels of sqrt(mean of e^2 over the faces at index 0 and -1 of every spatial axis, "
             "a point counted once per face) (PDEBench bRMSE)",
    "tolerance_multiple": "rmse / (rtol * RMS(u_ref) + atol)",
    "correlation_time": "leading rollout steps whose correlation stays >= the threshold",
}
"""What each per-sample metric is (``report.json["metric_definitions"]``)."""

PDEBENCH_DEFINITIONS = {
    "rmse": "mean over samples and channels of sqrt(mean_x e^2)",
    "nrmse": "mean over samples and channels of sqrt(mean_x e^2) / sqrt(mean_x ref^2)",
    "crmse": "mean over channels of sqrt(mean over samples of (mean_x pred - mean_x ref)^2): RMS over samples",
    "max_error": "mean over channels of max over samples and grid points of |e|",
    "brmse": "mean over samples and channels of sqrt(mean of e^2 over the faces at index 0 and -1 of every "
             "spatial axis)",
    "frmse_low": "mean over channels of the mean over mode bins k < 4 of F_k = sqrt(mean over samples of "
                 "|e_hat_k|^2) / prod(n) (1-D: rfft modes; 2-D/3-D: fftn, modes 0 <= i_a < n_a/2 binned by "
                 "floor(sqrt(sum i_a^2)) < min(n_a/2), |e_hat|^2 summed per bin), Lx = Ly = Lz = 1",
    "frmse_mid": "as frmse_low over mode bins 4 <= k < 12",
    "frmse_high": "as frmse_low over mode bins k >= 12",
}
"""What each of :func:`pdebench_metrics` is (``report.json["pdebench"]["definitions"]``)."""


def _space_axes(a: np.ndarray) -> tuple[int, ...]:
    return tuple(range(2, a.ndim - 1))


def _safe_div(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.where(num > 0, np.inf, 0.0))


def mode_numbers(shape: tuple[int, ...]) -> np.ndarray:
    """Radial integer mode number ``|m|`` of every entry of a full ``fftn`` over a grid of ``shape``."""
    ms = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in shape], indexing="ij")
    return np.sqrt(sum(m**2 for m in ms))


def field_metrics(pred, ref, *, band_edges: tuple[int, int] = (4, 12), energy: bool = False) -> dict:
    """All per-frame metrics of the module docstring: ``name -> (sample, time)`` float64 arrays."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape or pred.ndim < 4:
        raise ValueError(f"pred and ref must both be (sample, time, *space, channel), got {pred.shape} "
                         f"and {ref.shape}")
    ax = _space_axes(ref)
    e = pred - ref
    mse_c = np.mean(e**2, axis=ax)            # (S, T, C)
    ms_ref_c = np.mean(ref**2, axis=ax)       # (S, T, C)
    out = {}
    out["rmse"] = np.sqrt(np.mean(mse_c, axis=-1))
    out["rel_l2"] = _safe_div(out["rmse"], np.sqrt(np.mean(ms_ref_c, axis=-1)))
    out["nrmse"] = np.mean(_safe_div(np.sqrt(mse_c), np.sqrt(ms_ref_c)), axis=-1)
    out["max_error"] = np.max(np.abs(e), axis=(*ax, e.ndim - 1))
    var_ref_c = np.var(ref, axis=ax)
    out["vrmse"] = np.mean(np.sqrt(mse_c / (var_ref_c + VRMSE_EPS)), axis=-1)
    mass_p, mass_r = np.mean(pred, axis=ax), np.mean(ref, axis=ax)
    out["mass_error"] = np.sqrt(np.mean((mass_p - mass_r) ** 2, axis=-1))
    if energy:
        e_p = 0.5 * np.sum(np.mean(pred**2, axis=ax), axis=-1)
        e_r = 0.5 * np.sum(ms_ref_c, axis=-1)
        out["energy_error"] = _safe_div(np.abs(e_p - e_r), e_r)
    out.update(band_errors(e, band_edges))
    out["correlation"] = correlation(pred, ref)
    out["brmse"] = np.mean(np.sqrt(_boundary_mse(e)), axis=-1)
    return out


def _boundary_mse(e) -> np.ndarray:
    """``(S, T, C)`` mean of ``e^2`` over the faces at index 0 and -1 of every spatial axis (PDEBench's bRMSE)."""
    ax = _space_axes(e)
    total, count = 0.0, 0
    for a in ax:
        rest = tuple(b - 1 if b > a else b for b in ax if b != a)  # the other spatial axes once ``a`` is taken
        for i in (0, -1):
            total = total + np.sum(np.take(e, i, axis=a) ** 2, axis=rest)
        count += 2 * int(np.prod([e.shape[b] for b in ax if b != a]))
    return total / count


PDEBENCH_BANDS = (4, 12)  # PDEBench's iLow, iHigh


def pdebench_metrics(pred, ref) -> dict:
    """PDEBench's metrics per frame, aggregated over samples as ``metric_func`` does: ``name -> (time,)``.

    ``rmse``, ``nrmse``, ``crmse``, ``max_error``, ``brmse``, ``frmse_low``, ``frmse_mid``,
    ``frmse_high`` as in the module docstring (``Lx = Ly = Lz = 1``, ``iLow = 4``, ``iHigh = 12``),
    each averaged over channels; PDEBench's table value is the mean over the frames after the
    initial condition. Reference: Takamoto et al., PDEBench (NeurIPS 2022), ``pdebench/models/metrics.py``.

    Args:
        pred, ref: ``(sample, time, *space, channel)`` predictions and reference (1-3 spatial axes).
    """
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape or not 4 <= pred.ndim <= 6:
        raise ValueError(f"pred and ref must both be (sample, time, *space, channel) with 1-3 spatial axes, got "
                         f"{pred.shape} and {ref.shape}")
    ax = _space_axes(ref)
    e = pred - ref
    rmse_c = np.sqrt(np.mean(e**2, axis=ax))  # (S, T, C)
    out = {"rmse": np.mean(rmse_c, axis=(0, -1)),
           "nrmse": np.mean(_safe_div(rmse_c, np.sqrt(np.mean(ref**2, axis=ax))), axis=(0, -1)),
           "crmse": np.mean(np.sqrt(np.mean((np.mean(pred, axis=ax) - np.mean(ref, axis=ax)) ** 2, axis=0)),
                            axis=-1),
           "max_error": np.mean(np.max(np.abs(e), axis=(0, *ax)), axis=-1),
           "brmse": np.mean(np.sqrt(_boundary_mse(e)), axis=(0, -1))}
    f = _pdebench_mode_rmse(e)  # (T, C, K)
    lo, hi = PDEBENCH_BANDS
    for name, band in (("frmse_low", f[..., :lo]), ("frmse_mid", f[..., lo:hi]), ("frmse_high", f[..., hi:])):
        with np.errstate(invalid="ignore"):  # an empty band (a coarse grid) is NaN, as torch.mean of nothing
            out[name] = np.mean(np.mean(band, axis=-1) if band.shape[-1] else np.full(band.shape[:-1], np.nan),
                                axis=-1)
    return out


def _pdebench_mode_rmse(e) -> np.ndarray:
    """``(T, C, K)``: PDEBench's ``_err_F``, the RMS over samples of the error's Fourier amplitude per mode bin
    divided by the number of grid points (``Lx = Ly = Lz = 1``)."""
    ax = _space_axes(e)
    shape = tuple(e.shape[a] for a in ax)
    if len(ax) == 1:
        power = np.abs(np.fft.rfft(e, axis=2)) ** 2  # (S, T, nx//2 + 1, C)
    else:
        full = np.abs(np.fft.fftn(e, axes=ax)) ** 2
        quadrant = full[(slice(None), slice(None), *(slice(0, n // 2) for n in shape))]
        k = np.floor(np.sqrt(sum(i.astype(np.float64) ** 2 for i in np.meshgrid(
            *[np.arange(n // 2) for n in shape], indexing="ij")))).astype(int)
        nbins = min(n // 2 for n in shape)
        flat = quadrant.reshape(*e.shape[:2], -1, e.shape[-1])
        power = np.stack([np.sum(flat[:, :, k.ravel() == b], axis=2) for b in range(nbins)], axis=2)
    f = np.sqrt(np.mean(power, axis=0)) / np.prod(shape)  # (T, K, C)
    return np.moveaxis(f, -1, 1)


def band_errors(e, band_edges: tuple[int, int] = (4, 12)) -> dict:
    """Low/mid/high-frequency RMS errors of an error field ``e`` ``(S, T, *space, C)`` (see module doc)."""
    ax = _space_axes(e)
    shape = tuple(e.shape[a] for a in ax)
    n = int(np.prod(shape))
    power = np.sum(np.abs(np.fft.fftn(e, axes=ax)) ** 2, axis=-1)  # (S, T, *space)
    m = mode_numbers(shape)
    lo, hi = band_edges
    out = {}
    for name, mask in (("low_freq", m < lo), ("mid_freq", (m >= lo) & (m < hi)), ("high_freq", m >= hi)):
        out[name] = np.sqrt(np.sum(power * mask, axis=tuple(range(2, power.ndim))) / (n**2 * e.shape[-1]))
    return out


def correlation(pred, ref) -> np.ndarray:
    """Pearson correlation over the grid, per channel, averaged over channels: ``(S, T)``."""
    ax = _space_axes(ref)
    dp = pred - np.mean(pred, axis=ax, keepdims=True)
    dr = ref - np.mean(ref, axis=ax, keepdims=True)
    cov = np.mean(dp * dr, axis=ax)
    sp, sr = np.sqrt(np.mean(dp**2, axis=ax)), np.sqrt(np.mean(dr**2, axis=ax))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / (sp * sr)
    both_const = (sp == 0) & (sr == 0)
    agree = np.all(np.isclose(pred, ref, rtol=0, atol=0), axis=ax)
    r = np.where(both_const, np.where(agree, 1.0, 0.0), np.where((sp == 0) | (sr == 0), 0.0, r))
    return np.mean(np.clip(r, -1.0, 1.0), axis=-1)


def correlation_time(corr, threshold: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Steps until the correlation drops below ``threshold``.

    Args:
        corr: ``(S, H)`` correlations at rollout steps ``1..H`` (initial frame excluded).

    Returns:
        ``(steps, censored)``: ``steps[i]`` is the number of leading steps with
        ``corr >= threshold`` (0 .. H); ``censored[i]`` is True when it never dropped.
        A non-finite correlation counts as a drop.
    """
    corr = np.asarray(corr)
    below = ~(corr >= threshold)
    dropped = np.any(below, axis=1)
    steps = np.where(dropped, np.argmax(below, axis=1), corr.shape[1])
    return steps.astype(np.int64), ~dropped


def radial_spectrum(u, spatial_dims: int) -> np.ndarray:
    """Radially binned power spectrum of states ``(..., *space, C)`` summed over channels.

    Returns ``(..., K)`` with ``K = max(space)//2 + 1`` bins of integer radial mode
    number ``|m|`` (rounded), ``sum |u_hat|^2 / N^2`` per bin (Parseval: the bins
    sum to ``mean_x sum_c u^2`` up to the modes beyond ``K``).
    """
    u = np.asarray(u, dtype=np.float64)
    if spatial_dims < 1 or u.ndim < spatial_dims + 1:
        raise ValueError(f"u must end with {spatial_dims} spatial axes and a channel axis, got shape {u.shape}")
    nsp = spatial_dims
    shape = u.shape[-nsp - 1:-1]
    lead = u.shape[:-nsp - 1]
    ax = tuple(range(len(lead), len(lead) + len(shape)))
    power = np.sum(np.abs(np.fft.fftn(u, axes=ax)) ** 2, axis=-1) / np.prod(shape) ** 2
    m = np.rint(mode_numbers(shape)).astype(int).ravel()
    k = max(shape) // 2 + 1
    flat = power.reshape(*lead, -1)
    out = np.zeros((*lead, k))
    for b in range(k):
        out[..., b] = np.sum(flat[..., m == b], axis=-1)
    return out


def summarize(values) -> dict:
    """``mean``, ``q50``, ``q95`` and ``max`` of an array (over every entry; NaN propagates)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {"mean": None, "q50": None, "q95": None, "max": None}
    if not np.all(np.isfinite(v)):
        return {k: float("nan") if np.any(np.isnan(v)) else float("inf") for k in ("mean", "q50", "q95", "max")}
    return {"mean": float(np.mean(v)), "q50": float(np.quantile(v, 0.5)), "q95": float(np.quantile(v, 0.95)),
            "max": float(np.max(v))}


def upper_quantile(values, q: float) -> float:
    """The order statistic ``ceil(q * n)`` of ``n`` values (a conservative empirical ``q``-quantile)."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise ValueError("no values to take a quantile of")
    k = max(int(np.ceil(q * v.size - 1e-12)), 1)
    return float(v[k - 1])


def summarize_steps(values, horizon: int) -> dict:
    """:func:`summarize` of ``(sample, frame)`` values over frames ``1..horizon``, with ``per_step`` curves.

    ``per_step`` holds the ``mean``, ``q95`` and ``max`` over samples at each step
    ``1..horizon`` (frame 0, the initial condition, is left out of both).
    """
    v = np.asarray(values)[:, 1:horizon + 1]
    out = summarize(v)
    out["per_step"] = {"mean": np.mean(v, axis=0).tolist(), "q95": np.quantile(v, 0.95, axis=0).tolist(),
                       "max": np.max(v, axis=0).tolist()}
    return out
