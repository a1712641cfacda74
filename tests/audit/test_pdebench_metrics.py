"""PDEBench's metrics (bRMSE, fRMSE bands, cRMSE over samples) against a recomputation written from their
formulas (pdebench/models/metrics.py, ``metric_func``): explicit loops over samples, channels, boundary points
and Fourier modes, the DFT as a sum of exponentials."""

import math

import numpy as np
import pytest

import audit
from audit import _metrics
from tests.audit.conftest import DT, fine, quick_config


def _dft(a):
    """Full DFT of an n-D array by the definition sum_x a[x] exp(-2 pi i k.x / n)."""
    out = a.astype(complex)
    for ax, n in enumerate(a.shape):
        w = np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n)) / n)
        out = np.moveaxis(np.tensordot(w, np.moveaxis(out, ax, 0), axes=(1, 0)), 0, ax)
    return out


def _boundary_points(shape):
    """Every (index tuple) on the faces 0 and n-1 of each axis, once per face."""
    pts = []
    for a, n in enumerate(shape):
        for i in (0, n - 1):
            for idx in np.ndindex(*shape):
                if idx[a] == i:
                    pts.append(idx)
    return pts


def _reference(pred, ref):
    """name -> (T,) PDEBench values, written from the formulas with loops."""
    s, t = pred.shape[:2]
    space, c = pred.shape[2:-1], pred.shape[-1]
    n = math.prod(space)
    e = pred - ref
    out = {k: np.zeros(t) for k in ("rmse", "nrmse", "crmse", "max_error", "brmse",
                                    "frmse_low", "frmse_mid", "frmse_high")}
    bpts = _boundary_points(space)
    for f in range(t):
        for ch in range(c):
            rm, nr, br, mass2, mx = [], [], [], [], 0.0
            for b in range(s):
                eb, rb = e[b, f, ..., ch], ref[b, f, ..., ch]
                rm.append(math.sqrt(float(np.sum(eb**2)) / n))
                nr.append(rm[-1] / math.sqrt(float(np.sum(rb**2)) / n))
                br.append(math.sqrt(sum(float(eb[p]) ** 2 for p in bpts) / len(bpts)))
                mass2.append((float(np.sum(pred[b, f, ..., ch])) - float(np.sum(rb))) ** 2)
                mx = max(mx, float(np.max(np.abs(eb))))
            out["rmse"][f] += np.mean(rm) / c
            out["nrmse"][f] += np.mean(nr) / c
            out["brmse"][f] += np.mean(br) / c
            out["crmse"][f] += math.sqrt(np.mean(mass2)) / n / c  # PDEBench: sqrt(mean_b (sum diff)^2) / nx
            out["max_error"][f] += mx / c
            # fRMSE: per mode bin the RMS over samples of |e_hat| / n
            if len(space) == 1:
                nbins = space[0] // 2 + 1
                power = np.zeros((s, nbins))
                for b in range(s):
                    power[b] = np.abs(_dft(e[b, f, :, ch])[:nbins]) ** 2
            else:
                nbins = min(m // 2 for m in space)
                power = np.zeros((s, nbins))
                for b in range(s):
                    fe = np.abs(_dft(e[b, f, ..., ch])) ** 2
                    for idx in np.ndindex(*[m // 2 for m in space]):
                        k = math.floor(math.sqrt(sum(i * i for i in idx)))
                        if k <= nbins - 1:
                            power[b, k] += fe[idx]
            fk = np.sqrt(np.mean(power, axis=0)) / n
            out["frmse_low"][f] += np.mean(fk[:4]) / c
            out["frmse_mid"][f] += np.mean(fk[4:12]) / c
            out["frmse_high"][f] += np.mean(fk[12:]) / c
    return out


@pytest.mark.parametrize("shape", [(3, 2, 32, 2), (2, 2, 28, 26, 1), (2, 1, 26, 26, 2)])
def test_pdebench_metrics_match_their_formulas(shape):
    rng = np.random.default_rng(len(shape))
    ref = rng.normal(size=shape) + 2.0
    pred = ref + 0.1 * rng.normal(size=shape) + 0.03
    got = _metrics.pdebench_metrics(pred, ref)
    want = _reference(pred, ref)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, err_msg=k)
    # the per-sample bRMSE of field_metrics, averaged over samples, is PDEBench's
    np.testing.assert_allclose(np.mean(audit.field_metrics(pred, ref)["brmse"], axis=0), want["brmse"], rtol=1e-12)


def test_crmse_is_rms_over_samples_not_mean():
    ref = np.zeros((2, 1, 8, 1))
    pred = ref.copy()
    pred[0] += 1.0  # box-mean errors 1 and 0: RMS sqrt(1/2), mean 1/2
    m = _metrics.pdebench_metrics(pred, ref)
    assert m["crmse"][0] == pytest.approx(math.sqrt(0.5))
    assert np.mean(audit.field_metrics(pred, ref)["mass_error"]) == pytest.approx(0.5)


def test_brmse_1d_by_hand():
    ref = np.zeros((1, 1, 5, 1))
    pred = ref.copy()
    pred[0, 0, :, 0] = [3.0, 9.0, 9.0, 9.0, 4.0]  # only the two end points count
    assert audit.field_metrics(pred, ref)["brmse"][0, 0] == pytest.approx(math.sqrt((9 + 16) / 2))


def test_report_states_pdebench_metrics_and_definitions(burgers, splits):
    test, cal = splits
    step = fine(burgers, DT, substeps=2)
    report = audit.run(step, test, cal, "rmse<=1", config=quick_config(horizon=4), repeats=1, pde=burgers)
    s = report.summary
    want = _metrics.pdebench_metrics(report.predictions, report.rollouts.ref)
    assert s["pdebench"]["crmse"]["value"] == pytest.approx(np.mean(want["crmse"][1:5]))
    assert s["pdebench"]["frmse_high"]["per_step"] == pytest.approx(want["frmse_high"][1:5].tolist())
    assert set(s["pdebench"]["definitions"]) == set(want)
    assert "brmse" in s["metrics"] and "brmse" in s["metric_definitions"]
    assert s["conformal"]["status"] == "calibrated" and "AND" in s["conformal"]["verdict_rule"]
