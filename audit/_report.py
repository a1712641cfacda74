"""Writing the audit's outputs: ``report.json``, ``predictions.h5`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np

import solvers

from . import _cost, _metrics


def write_outputs(out: Path, summary: dict, pred, ref, t, test, req_values, tol, score_test,
                  score_cal) -> dict:
    """Write the three files into ``out`` (created if needed); return their paths.

    Each file is written to a temporary name and renamed into place, ``report.json``
    last: a report.json beside its predictions and html means all three are of this
    audit, and an audit stopped on the way (a full disk, a kill) leaves no new
    report.json, so a rerun redoes it. A stale report.json of an earlier audit is
    removed first, for the same reason.
    """
    out.mkdir(parents=True, exist_ok=True)
    files = {"predictions": str(out / "predictions.h5"), "json": str(out / "report.json"),
             "html": str(out / "report.html")}
    (out / "report.json").unlink(missing_ok=True)
    html_text = render_html(summary, pred, ref, req_values, tol, score_test, score_cal)
    write_predictions(out / "predictions.h5", pred, t, test, summary.get("provenance", {}))
    _atomic_write(out / "report.html", html_text)
    _atomic_write(out / "report.json", json.dumps(summary, indent=1, allow_nan=False))
    return files


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place (removed when the write fails)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_predictions(path: Path, pred, t, test, provenance: dict) -> None:
    """The rollouts as a byai dataset file (``datasets.write``), initial frame included.

    The time axis is the test file's first ``horizon + 1`` save times; the
    grid, channel names, PDE and per-sample physics are the test file's. The
    predictions carry no solver tolerance (``rtol = atol = NaN``,
    ``tolerance_known = 0``) and a NaN ``error_estimate`` (a surrogate states
    no bound); ``source = "byai audit predictions"``, ``reference_sha256`` is
    the test file's checksum and ``provenance`` (JSON) the report's. The
    ``problem`` attribute and, where they differ from the grid's periodic nodes
    (a steady map's cell centres), the coordinates are the test file's.
    """
    import datasets

    attrs = dict(test.attrs)
    space_dims = tuple(test["u"].dims)[2:-1]
    grid = None
    if "grid_shape" in attrs and "grid_length" in attrs:
        try:
            grid = solvers.Grid(tuple(int(n) for n in np.atleast_1d(attrs["grid_shape"])),
                                tuple(float(x) for x in np.atleast_1d(attrs["grid_length"])))
            if grid.shape != tuple(pred.shape[2:-1]):
                grid = None
        except ValueError:
            grid = None
    coords = None if grid is not None else [
        np.asarray(test.coords[d].values, np.float64) if d in test.coords else np.arange(n, dtype=np.float64)
        for d, n in zip(space_dims, pred.shape[2:-1])]
    channels = ([str(c.decode() if isinstance(c, bytes) else c) for c in np.asarray(test["channel"].values)]
                if "channel" in test.coords else None)
    pde_params = attrs.get("pde_params", {})
    if isinstance(pde_params, bytes):
        pde_params = pde_params.decode()
    if isinstance(pde_params, str):
        try:
            pde_params = json.loads(pde_params) if pde_params else {}
        except json.JSONDecodeError:
            pde_params = {}
    params = param_names = None
    if "params" in test.variables:
        params = np.asarray(test["params"].values, np.float64)
        param_names = [str(n.decode() if isinstance(n, bytes) else n) for n in np.asarray(test["param"].values)]
    pde = attrs.get("pde", "unknown")
    # the test file's own coordinates where they are not the grid's periodic nodes (a steady map's cell centres)
    if grid is not None and all(d in test.coords for d in space_dims) and not all(
            np.allclose(test.coords[d].values, c) for d, c in zip(space_dims, grid.coordinates())):
        grid, coords = None, [np.asarray(test.coords[d].values, np.float64) for d in space_dims]
    extra = {"problem": attrs["problem"]} if "problem" in attrs else {}  # the test file's kind, as it states it
    tmp = path.with_name(path.name + ".tmp")
    try:
        datasets.write(tmp, np.ascontiguousarray(pred, dtype=np.float64), t=np.asarray(t), grid=grid, coords=coords,
                       channel_names=channels, pde=str(pde.decode() if isinstance(pde, bytes) else pde),
                       pde_params=dict(pde_params or {}), params=params, param_names=param_names or (),
                       attrs={"source": "byai audit predictions", "reference_sha256": str(attrs.get("sha256", "")),
                              "provenance": json.dumps(provenance), **extra})
        os.replace(tmp, path)
    except BaseException:  # no partial file is left behind (a full disk, an interrupt)
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------ html
def _floats(values) -> np.ndarray:
    """A report.json list as floats: its non-finite values are the strings "nan", "inf", "-inf" (not drawn)."""
    return np.array([float(v) for v in values], dtype=float)


def _fig_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def render_html(summary: dict, pred, ref, req_values, tol, score_test, score_cal) -> str:
    """One self-contained page: verdict, tables and embedded matplotlib PNGs (Agg backend).

    ``req_values`` is the ``(sample, horizon)`` array of the requirement's metric (or its
    tolerance multiples) at rollout steps ``1..horizon``.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    req = summary["requirement"]
    h = req["horizon"]
    steps = np.arange(1, h + 1)
    figs = []
    name = req["metric"] if req["threshold_kind"] == "absolute" else f"{req['metric']} (x solver tolerance)"
    key = req["metric"]

    # 1. error vs step
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    vals = np.asarray(req_values)
    if req["threshold_kind"] == "absolute":
        tol_line = _tolerance_in_units(key, ref, tol)
    else:
        tol_line = np.ones(h)
    curves = [(np.mean(vals, axis=0), "-", "mean over test samples"),
              (np.quantile(vals, 0.95, axis=0), "--", "q95 over test samples")]
    if summary["conformal"].get("per_step"):  # None without calibration predictions
        curves.append((np.asarray(summary["conformal"]["per_step"]["bound"], float), ":", "conformal bound (1-alpha)"))
    for y, style, label in curves:
        ax.plot(steps, y, style, label=label)
    ax.axhline(req["threshold"], color="r", label="threshold")
    if tol_line is not None:
        ax.plot(steps, tol_line, color="k", lw=1, label="solver tolerance")
    # a log axis where the errors have something to show on it; errors all exactly 0 (a model that
    # reproduces the data) stay on a linear one
    if any(np.any(np.asarray(y) > 0) for y, _, _ in curves):
        ax.set_yscale("log")
    ax.set_xlabel("rollout step")
    ax.set_ylabel(name)
    ax.legend(fontsize=7)
    ax.set_title("error vs rollout step")
    figs.append(("Error vs rollout step", _fig_png(fig)))

    # 2. histograms of the per-sample scores
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    st, sc = np.asarray(score_test), np.asarray(score_cal)
    both = np.concatenate([st, sc])  # no calibration scores without calibration predictions
    lo = max(both.min(), 1e-300)
    hi = max(both.max(), req["threshold"]) * 1.01
    # explicit edges: scores equal up to rounding would make numpy's automatic range too narrow to bin
    bins = np.geomspace(lo, hi, 30) if hi / lo > 20 else np.linspace(lo, hi, 31)
    if sc.size:
        ax.hist(sc, bins=bins, alpha=0.5, label="calibration")
    ax.hist(st, bins=bins, alpha=0.5, label="test")
    ax.axvline(req["threshold"], color="r", label="threshold")
    if summary["conformal"]["bound"] is not None:
        ax.axvline(summary["conformal"]["bound"], color="k", ls=":", label="conformal bound")
    if hi / lo > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"per-sample score: max over steps of {name}")
    ax.legend(fontsize=7)
    figs.append(("Per-sample error histogram", _fig_png(fig)))

    # 3. spectra at the last step
    sd = pred.ndim - 3
    sp = np.mean(_metrics.radial_spectrum(pred[:, -1], sd), axis=0)
    sr = np.mean(_metrics.radial_spectrum(ref[:, -1], sd), axis=0)
    se = np.mean(_metrics.radial_spectrum(pred[:, -1] - ref[:, -1], sd), axis=0)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    k = np.arange(sp.size)
    floor = 1e-300
    ax.semilogy(k, np.maximum(sr, floor), label="reference")
    ax.semilogy(k, np.maximum(sp, floor), "--", label="prediction")
    ax.semilogy(k, np.maximum(se, floor), ":", label="error")
    ax.set_xlabel("mode number |m|")
    ax.set_ylabel("power")
    ax.set_title(f"spectra at step {h} (mean over test samples)")
    ax.legend(fontsize=7)
    figs.append(("Spectra", _fig_png(fig)))

    # 4. cost-accuracy
    eq = summary["equal_accuracy"]
    if eq.get("points"):
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        def label(p):
            st = p["setting"]
            return "adaptive solve (rtol)" if st.get("adaptive") else f"fixed-step {st['method']}"

        for lab in sorted({label(p) for p in eq["points"]}):
            pts = [p for p in eq["points"] if label(p) == lab and isinstance(p["seconds"], float)
                   and isinstance(p["error"], float)]
            ax.loglog([p["seconds"] for p in pts], [p["error"] for p in pts], "s" if "adaptive" in lab else "o",
                      label=lab)
        if eq["surrogate_seconds"] is not None:  # unknown for predictions audited without their wall time
            ax.loglog([eq["surrogate_seconds"]], [eq["surrogate_error"]], "r*", ms=12, label="surrogate")
        ax.axhline(eq["surrogate_error"], color="r", lw=0.5)
        ax.set_xlabel("wall time for the test split (s)")
        ax.set_ylabel(name)
        ax.legend(fontsize=7)
        ax.set_title("cost vs accuracy")
        figs.append(("Cost-accuracy", _fig_png(fig)))

    # 5. PDE residual of the rollout
    phys = summary["physics"]
    if phys.get("status") != "unknown":
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
        res = phys["residual"]
        for side, stat, style in (("prediction", "mean", "-"), ("prediction", "max", "--"), ("reference", "mean", "-")):
            ax.semilogy(steps, np.maximum(_floats(res[side]["per_step"][stat]), 1e-300), style,
                        label=f"{side} ({stat})")
        if tol is not None:
            ax.semilogy(steps, np.mean(tol[:, 1:], axis=0), color="k", lw=1, label="solver tolerance")
        ax.set_xlabel("rollout step n")
        ax.set_ylabel("RMS(u[n] - S_dt(u[n-1]))")
        ax.set_title("PDE residual of the rollout (one-step defect)")
        ax.legend(fontsize=7)
        figs.append(("PDE residual", _fig_png(fig)))

    # 6. worst sample
    w = summary["score"]["worst_sample"]
    figs.append((f"Worst test sample ({w}) at step {h}", _fig_png(_field_figure(pred[w, -1], ref[w, -1], plt))))

    verdict = "PASS" if summary["passed"] else "FAIL"
    color = "#1a7f37" if summary["passed"] else "#cf222e"
    s = summary["score"]
    c = summary["conformal"]
    tm = summary["tolerance_multiple"]
    tm_line = ("unknown (the reference data states no tolerance)" if tm == "unknown" else
               f"rmse is {_fmt(tm['rmse']['mean'])} times the solver tolerance on average "
               f"(q95 {_fmt(tm['rmse']['q95'])}, max {_fmt(tm['rmse']['max'])})")
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v.get('mean'))}</td><td>{_fmt(v.get('q50'))}</td>"
        f"<td>{_fmt(v.get('q95'))}</td><td>{_fmt(v.get('max'))}</td></tr>"
        for k, v in summary["metrics"].items())
    eq_line = (f"solver at equal accuracy: {_fmt(eq.get('solver_seconds'))} s with "
               f"{html.escape(json.dumps(eq.get('solver_setting')))}; surrogate {_fmt(eq['surrogate_seconds'])} s; "
               f"speedup {_fmt(eq.get('speedup'))} ({html.escape(eq.get('note', eq.get('status', '')))})"
               + (f"; speedup unknown: {html.escape(eq['speedup_reason'])}" if eq.get("speedup_reason") else "")
               if eq.get("status") == "measured" else
               f"equal accuracy: {html.escape(eq.get('status', ''))} {html.escape(str(eq.get('reason', '')))}")
    phys_line = ("physics: unknown (" + html.escape(str(phys.get("reason"))) + ")" if phys.get("status") == "unknown"
                 else "PDE residual per step: prediction mean " + _fmt(phys["residual"]["prediction"]["mean"])
                 + ", reference mean " + _fmt(phys["residual"]["reference"]["mean"])
                 + "; conserved: " + html.escape(json.dumps(phys["conserved"])))
    body = "".join(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{png}'/>" for title, png in figs)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>byai audit: {verdict}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}} td,th{{padding:2px 8px;text-align:right}}
.v{{font-size:2em;color:{color};font-weight:bold}}</style></head><body>
<div class="v">{verdict}: {html.escape(req['text'])} over {h} steps</div>
<p>q{_fmt(req['quantile'])} of the per-sample score over {summary['samples']['test']} test samples:
<b>{_fmt(s['test_quantile'])}</b>; conformal bound at level {_fmt(c['level'])} from {c['n_calibration']}
calibration samples: <b>{_fmt(c['bound'])}</b> (coverage: calibration {_fmt(c['coverage_calibration'])},
test {_fmt(c['coverage_test'])}); threshold {_fmt(req['threshold'])}. {_conformal_sentence(c)}</p>
<p>Solver tolerance: {tm_line}.</p>
<p>{eq_line}</p>
<p>Cost: {html.escape(_cost.sentence(summary.get("cost") or {}))}.</p>
<p>{phys_line}</p>
<h2>Metrics over test samples and steps 1..{h}</h2>
<table><tr><th>metric</th><th>mean</th><th>q50</th><th>q95</th><th>max</th></tr>{rows}</table>
{body}
<h2>Provenance</h2><pre>{html.escape(json.dumps(summary['provenance'], indent=1))}</pre>
</body></html>
"""


def _conformal_sentence(c: dict) -> str:
    """How the verdict was reached, saying so when there is no conformal bound (no calibration predictions)."""
    if c.get("status", "calibrated") == "calibrated":
        return "The requirement holds when both are at most the threshold."
    return (f"<b>No conformal bound: {html.escape(str(c.get('reason')))}.</b> "
            f"{html.escape(str(c.get('verdict_rule')))}.")


def _tolerance_in_units(key, ref, tol):
    """The mean per-step solver tolerance in the units of metric ``key`` (None when not comparable)."""
    if tol is None:
        return None
    ax = tuple(range(2, ref.ndim))
    if key in ("rmse", "max_error", "mass_error", "low_freq", "mid_freq", "high_freq"):
        return np.mean(tol[:, 1:], axis=0)
    if key in ("rel_l2", "nrmse"):
        return np.mean(tol[:, 1:] / np.sqrt(np.mean(ref**2, axis=ax))[:, 1:], axis=0)
    if key == "tolerance_multiple":
        return np.ones(tol.shape[1] - 1)
    return None


def _field_figure(p, r, plt):
    if p.ndim == 2:  # 1-D: (x, C)
        fig, axs = plt.subplots(2, 1, figsize=(6.5, 4.5), sharex=True)
        for c in range(p.shape[-1]):
            axs[0].plot(r[:, c], label=f"reference c{c}")
            axs[0].plot(p[:, c], "--", label=f"prediction c{c}")
            axs[1].plot(p[:, c] - r[:, c], label=f"error c{c}")
        axs[0].legend(fontsize=7)
        axs[1].set_xlabel("grid index")
        axs[1].set_ylabel("error")
        return fig
    p2, r2 = p[..., 0], r[..., 0]
    while p2.ndim > 2:  # 3-D: middle slice
        p2, r2 = p2[p2.shape[0] // 2], r2[r2.shape[0] // 2]
    fig, axs = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
    for ax, a, title in zip(axs, (r2, p2, p2 - r2), ("reference", "prediction", "error")):
        im = ax.imshow(a.T, origin="lower")
        ax.set_title(f"{title} (channel 0)")
        ax.set_xlabel("x index")
        ax.set_ylabel("y index")
        fig.colorbar(im, ax=ax, shrink=0.85)
    return fig
