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
``mass_error``  PDEBench "cRMSE" (conserved quantity): per channel ``|mean_x pred - mean_x ref|``
                (the box-averaged mass), RMS over channels.
``energy_error`` relative error of the energy density ``E = mean_{x} sum_c u^2 / 2``:
                ``|E(pred) - E(ref)| / E(ref)``; reported only for PDEs that conserve ``E``.
``low_freq``,   PDEBench "fRMSE" bands, made Parseval-consistent: with ``e_hat`` the full FFT over the
``mid_freq``,   spatial axes and ``|m|`` the (radial) integer mode number,
``high_freq``   ``sqrt(sum_{|m| in band, c} |e_hat|^2 / (N^2 C))`` for the bands ``|m| < lo``,
                ``lo <= |m| < hi``, ``|m| >= hi`` (PDEBench's ``lo=4, hi=12`` by default), so that
                ``low^2 + mid^2 + high^2 = rmse^2``.
``correlation`` Pearson correlation of pred and ref over grid points, per channel, mean over channels
                (The Well's "pearson"); 1 for two constant fields that agree, 0 when one is constant.
==============  =====================================================================================

``correlation_time`` (per sample): the number of leading rollout steps
``1, 2, ...`` whose correlation stays ``>= threshold`` (0.8 by default, as in
The Well and PDEArena); it equals the horizon when the correlation never drops
(``censored``).
"""

from __future__ import annotations

import numpy as np

VRMSE_EPS = 1e-7  # The Well's epsilon in the variance-scaled RMSE


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
    return out


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
