"""Each metric against values computed by hand on tiny arrays."""

import numpy as np
import pytest

import audit
from audit import _metrics


def _traj(values):
    """(1 sample, 1 frame, *space, C) from a (*space, C) array."""
    return np.asarray(values, dtype=np.float64)[None, None]


def test_pointwise_metrics_by_hand():
    ref = _traj([[1.0], [2.0], [3.0], [4.0]])
    pred = _traj([[1.0], [2.0], [3.0], [6.0]])  # error (0, 0, 0, 2)
    m = audit.field_metrics(pred, ref, energy=True)
    assert m["rmse"][0, 0] == pytest.approx(1.0)  # sqrt(4 / 4)
    assert m["rel_l2"][0, 0] == pytest.approx(1 / np.sqrt(7.5))  # RMS(ref) = sqrt(30 / 4)
    assert m["nrmse"][0, 0] == pytest.approx(1 / np.sqrt(7.5))
    assert m["max_error"][0, 0] == pytest.approx(2.0)
    assert m["vrmse"][0, 0] == pytest.approx(np.sqrt(1 / (1.25 + 1e-7)))  # var(1, 2, 3, 4) = 1.25
    assert m["mass_error"][0, 0] == pytest.approx(0.5)  # means 3 and 2.5
    assert m["energy_error"][0, 0] == pytest.approx(2 / 3)  # E = 50/8 vs 30/8
    assert m["correlation"][0, 0] == pytest.approx(np.corrcoef([1, 2, 3, 6], [1, 2, 3, 4])[0, 1])
    assert "energy_error" not in audit.field_metrics(pred, ref)


def test_multichannel_relative_metrics():
    ref = np.ones((1, 1, 4, 2))
    ref[..., 1] = 10.0
    pred = ref + 0.1
    m = audit.field_metrics(pred, ref)
    assert m["nrmse"][0, 0] == pytest.approx((0.1 + 0.01) / 2)  # PDEBench: per channel, then mean
    assert m["rel_l2"][0, 0] == pytest.approx(0.1 / np.sqrt((1 + 100) / 2))  # joint over channels
    assert m["rmse"][0, 0] == pytest.approx(0.1)
    assert m["mass_error"][0, 0] == pytest.approx(0.1)
    # constant fields: variance 0, VRMSE = sqrt(mse / 1e-7)
    assert m["vrmse"][0, 0] == pytest.approx(np.sqrt(0.01 / 1e-7))


def test_band_errors_1d_by_hand():
    x = np.arange(16) * 2 * np.pi / 16
    e = np.cos(x) + 0.5 * np.cos(3 * x) + 0.25 * np.sin(6 * x)
    ref = np.zeros((1, 1, 16, 1))
    m = audit.field_metrics(ref + e[None, None, :, None], ref, band_edges=(2, 4))
    assert m["low_freq"][0, 0] == pytest.approx(1 / np.sqrt(2))
    assert m["mid_freq"][0, 0] == pytest.approx(0.5 / np.sqrt(2))
    assert m["high_freq"][0, 0] == pytest.approx(0.25 / np.sqrt(2))
    total = m["low_freq"] ** 2 + m["mid_freq"] ** 2 + m["high_freq"] ** 2
    assert total[0, 0] == pytest.approx(m["rmse"][0, 0] ** 2)


def test_band_errors_2d_radial():
    x = np.arange(16) * 2 * np.pi / 16
    X, Y = np.meshgrid(x, x, indexing="ij")
    e = np.cos(3 * X) * np.cos(4 * Y)  # |m| = 5, RMS 1/2
    out = audit.band_errors(e[None, None, :, :, None], (4, 6))
    assert out["low_freq"][0, 0] == pytest.approx(0, abs=1e-14)
    assert out["mid_freq"][0, 0] == pytest.approx(0.5)
    assert out["high_freq"][0, 0] == pytest.approx(0, abs=1e-14)
    out = audit.band_errors(e[None, None, :, :, None], (2, 5))
    assert out["high_freq"][0, 0] == pytest.approx(0.5)  # |m| = 5 >= 5 is high


def test_correlation():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 3, 32, 1))
    assert np.allclose(audit.correlation(2 * ref + 1, ref), 1.0)
    assert np.allclose(audit.correlation(-ref, ref), -1.0)
    const = np.ones((1, 1, 8, 1))
    assert audit.correlation(const, const)[0, 0] == 1.0  # equal constants agree
    assert audit.correlation(2 * const, const)[0, 0] == 0.0
    assert audit.correlation(ref[:, :1], np.ones_like(ref[:, :1]))[0, 0] == 0.0


def test_correlation_time():
    corr = np.array([[0.9, 0.85, 0.7, 0.9], [0.9, 0.9, 0.9, 0.9], [0.5, 0.9, 0.9, 0.9], [0.9, np.nan, 1, 1]])
    steps, censored = audit.correlation_time(corr, 0.8)
    assert steps.tolist() == [2, 4, 0, 1]
    assert censored.tolist() == [False, True, False, False]
    steps, _ = audit.correlation_time(corr, 0.6)
    assert steps.tolist() == [4, 4, 0, 1]


def test_radial_spectrum_parseval():
    x = np.arange(16) * 2 * np.pi / 16
    u = (np.cos(2 * x) + 3.0)[:, None]
    s = audit.radial_spectrum(u, 1)
    assert s.shape == (9,)
    assert s[0] == pytest.approx(9.0)
    assert s[2] == pytest.approx(0.5)
    assert np.sum(s) == pytest.approx(np.mean(u**2))


def test_summaries_and_quantile():
    v = np.arange(1.0, 11.0)
    assert _metrics.upper_quantile(v, 0.95) == 10.0  # ceil(9.5) = 10th
    assert _metrics.upper_quantile(v, 0.5) == 5.0
    assert _metrics.upper_quantile(v, 0.91) == 10.0
    assert _metrics.upper_quantile(v, 0.9) == 9.0
    s = audit.summarize(v)
    assert s == {"mean": 5.5, "q50": 5.5, "q95": pytest.approx(9.55), "max": 10.0}
    assert np.isnan(audit.summarize([1.0, np.nan])["max"])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="pred and ref"):
        audit.field_metrics(np.zeros((1, 2, 4, 1)), np.zeros((1, 2, 5, 1)))
