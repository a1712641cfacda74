"""audit.run end to end on small Burgers data: a perfect and a perturbed stepper, outputs and bad input."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import audit
import datasets
import solvers
from tests.audit.conftest import DT, N, fine, initial_conditions, quick_config


@pytest.fixture(scope="module")
def perfect(burgers, splits, tmp_path_factory):
    test, cal = splits
    out = tmp_path_factory.mktemp("perfect")
    return audit.run(fine(burgers, DT), test, cal, "rmse<=1x", config=quick_config(), repeats=1, pde=burgers,
                     out_dir=out, model_info={"pde": "burgers", "checkpoint_sha256": "abc"}), out


@pytest.fixture(scope="module")
def perturbed(burgers, splits, tmp_path_factory):
    test, cal = splits
    out = tmp_path_factory.mktemp("perturbed")
    return audit.run(solvers.stepper(burgers, DT, "etdrk1"), test, cal, "rel_l2<=0.01",
                     config=quick_config(), repeats=1, pde=burgers, out_dir=out), out


def test_perfect_stepper_passes(perfect):
    report, out = perfect
    s = report.summary
    assert report.passed and s["passed"] is True and s["verdict"] == "pass"
    assert s["requirement"]["threshold_kind"] == "tolerance_multiple"
    assert s["score"]["test_quantile"] < 1e-6  # the data's own stepper: only round-off
    assert s["tolerance_multiple"]["rmse"]["max"] < 1e-6
    assert s["provenance"]["checkpoint_sha256"] == "abc"
    assert s["provenance"]["test_sha256"] == "sha-1"
    assert s["physics"]["conserved"] == {"mass": True, "energy": False}
    # the residual of the reference trajectory is the fine step's own error: tiny
    assert s["physics"]["residual"]["prediction"]["max"] < 1e-6
    assert s["metrics"]["correlation_time"]["censored_fraction"] == 1.0
    assert set(json.loads((out / "report.json").read_text())) >= {
        "passed", "requirement", "metrics", "solver_tolerance", "tolerance_multiple", "conformal",
        "equal_accuracy", "provenance"}


def test_perturbed_stepper_fails(perturbed, splits):
    report, out = perturbed
    s = report.summary
    assert not report.passed and s["verdict"] == "fail"
    test, _ = splits
    assert report.predictions.shape == (6, 9, 32, 1)
    assert np.array_equal(report.predictions[:, 0], test["u"].values[:, 0])
    # errors grow with the rollout and the residual shows the stepper's per-step error
    curve = s["metrics"]["rel_l2"]["per_step"]["mean"]
    assert len(curve) == 8 and curve[-1] > curve[0] > 0
    assert s["physics"]["residual"]["prediction"]["mean"] > 100 * s["physics"]["residual"]["reference"]["mean"]
    c = s["conformal"]
    assert c["n_calibration"] == 19 and c["coverage_calibration"] >= 0.9
    # the bound is the ceil((n + 1)(1 - alpha))-th smallest calibration score, recomputed here from an
    # independent rollout of the calibration split (score: max over steps 1..8 of rel_l2)
    _, cal = splits
    ref_cal = cal["u"].values
    step = jax.jit(jax.vmap(lambda u: solvers.rollout(solvers.stepper(solvers.Burgers(solvers.Grid((N,)), nu=0.05),
                                                                      DT, "etdrk1"), u, 8)))
    pred_cal = np.asarray(step(jnp.asarray(ref_cal[:, 0])))
    rel = np.sqrt(np.sum((pred_cal - ref_cal) ** 2, axis=(2, 3)) / np.sum(ref_cal**2, axis=(2, 3)))
    cal_scores = np.sort(np.max(rel[:, 1:], axis=1))
    k = int(np.ceil((19 + 1) * (1 - 0.1)))
    assert k == 18 and c["bound"] == pytest.approx(cal_scores[k - 1], rel=1e-9)
    assert np.all(np.diff(cal_scores) > 1e-6 * cal_scores[1:])  # no ties: k of the n scores are within it
    assert c["coverage_calibration"] == pytest.approx(k / 19)
    assert c["coverage_test"] == pytest.approx(np.mean(np.asarray(s["score"]["per_sample"]) <= c["bound"]))
    assert 0 < c["coverage_test"] <= 1 and min(s["score"]["per_sample"]) <= c["bound"]
    # the score is the max over steps of rel_l2 per sample
    assert s["score"]["per_sample"] == pytest.approx(np.max(report.metrics["rel_l2"][:, 1:], axis=1).tolist())
    # tolerance multiples: rmse / (rtol RMS(u) + atol)
    ref = test["u"].values
    tol = 1e-6 * np.sqrt(np.mean(ref**2, axis=(2, 3))) + 1e-10
    assert s["tolerance_multiple"]["rmse"]["max"] == pytest.approx(np.max(report.metrics["rmse"][:, 1:] / tol[:, 1:]))
    assert s["tolerance_multiple"]["rel_l2"]["max"] == pytest.approx(s["tolerance_multiple"]["rmse"]["max"])
    html = (out / "report.html").read_text()
    assert html.index("FAIL") < html.index("<img") and html.count("data:image/png;base64,") >= 4


def test_metrics_recompute_from_predictions_file(perturbed, splits):
    report, out = perturbed
    test, _ = splits
    pred = datasets.open(out / "predictions.h5", verify=True)
    assert pred.attrs["tolerance_known"] == 0 and np.isnan(pred.attrs["rtol"])
    assert np.allclose(pred["time"].values, test["time"].values)
    m = audit.field_metrics(pred["u"].values, test["u"].values)
    saved = json.loads((out / "report.json").read_text())["metrics"]
    for name in ("rel_l2", "rmse", "nrmse", "max_error", "vrmse", "mass_error", "low_freq", "mid_freq",
                 "high_freq", "correlation"):
        assert audit.summarize(m[name][:, 1:]) == pytest.approx(
            {k: saved[name][k] for k in ("mean", "q50", "q95", "max")}, rel=1e-12), name
        assert np.mean(m[name][:, 1:], axis=0) == pytest.approx(saved[name]["per_step"]["mean"], rel=1e-12)


def test_unknown_tolerance(burgers, splits, perturbed):
    test, cal = splits
    imported = test.assign_attrs(rtol=np.nan, atol=np.nan, tolerance_known=0)
    with pytest.raises(audit.AuditError, match="tolerance is unknown"):
        audit.run(solvers.stepper(burgers, DT, "etdrk1"), imported, cal, "rel_l2<=300x", config=quick_config(),
                  repeats=1, pde=burgers)
    r = audit.run(solvers.stepper(burgers, DT, "etdrk1"), imported, cal, "rel_l2<=0.01", config=quick_config(),
                  repeats=1, pde=burgers)
    assert r.summary["tolerance_multiple"] == "unknown"
    assert r.summary["solver_tolerance"]["known"] is False
    assert r.summary["score"] == perturbed[0].summary["score"]


def test_bad_steppers(burgers, splits):
    test, cal = splits
    with pytest.raises(audit.AuditError, match=r"shape \(32, 1\)"):
        audit.run(lambda u: u[:16], test, cal, "rmse<=1", config=quick_config(), repeats=1)
    with pytest.raises(audit.AuditError, match="shape"):
        audit.run(lambda u: jnp.zeros((3, 3)) @ u, test, cal, "rmse<=1", config=quick_config(), repeats=1)

    def blows_up(u):
        return u * 1e300 * 1e300

    with pytest.raises(audit.AuditError, match="non-finite.*sample 0, rollout step 1"):
        audit.run(blows_up, test, cal, "rmse<=1", config=quick_config(), repeats=1, pde=burgers)
    with pytest.raises(audit.AuditError, match="fails on a state"):  # not an array
        audit.run(lambda u: (u, u), test, cal, "rmse<=1", config=quick_config(), repeats=1)


def test_bad_splits_and_models(burgers, splits):
    test, cal = splits
    step = fine(burgers, DT)
    with pytest.raises(audit.AuditError, match="8 samples, too few"):
        audit.run(step, test, cal.isel(sample=slice(0, 8)), "rmse<=1", config=quick_config(), repeats=1, pde=burgers)
    with pytest.raises(audit.AuditError, match="trained on PDE 'kdv'"):
        audit.run(step, test, cal, "rmse<=1", config=quick_config(), repeats=1, pde=burgers, model_info={"pde": "kdv"})
    with pytest.raises(audit.AuditError, match="horizon 20 exceeds"):
        audit.run(step, test, cal, "rmse<=1", config=quick_config(horizon=20), repeats=1, pde=burgers)
    with pytest.raises(audit.AuditError, match="energy_error"):
        audit.run(step, test, cal, "energy_error<=1", config=quick_config(), repeats=1, pde=burgers)
    steady = {"problem": "steady_map"}
    with pytest.raises(audit.AuditError, match="calibration split is a trajectory dataset, the test split a "
                                               "steady_map"):
        audit.run(step, test.assign_attrs(**steady), cal, "rmse<=1", config=quick_config(), repeats=1)
    with pytest.raises(audit.AuditError, match=r"dims \(sample, stage, x\[, y\], channel\)"):
        audit.run(step, test.assign_attrs(**steady), cal.assign_attrs(**steady), "rmse<=1", config=quick_config(),
                  repeats=1)


def test_horizon_and_unknown_pde(burgers, splits):
    """A shorter horizon; without a PDE (imported data) physics and equal accuracy are 'unknown'."""
    test, cal = splits
    r = audit.run(fine(burgers, DT), test, cal, "rmse<=1e-6", config=quick_config(horizon=3), repeats=1)
    assert r.passed
    assert r.predictions.shape[1] == 4
    assert r.summary["physics"]["status"] == "unknown"
    assert len(r.summary["metrics"]["rmse"]["per_step"]["mean"]) == 3
    r = audit.run(fine(burgers, DT), test, cal, "rmse<=1e-6", config=quick_config(horizon=3), repeats=1, pde=object())
    assert r.summary["physics"] == {"status": "unknown", "reason": "the PDE could not be evaluated (object is not "
                                    "a solvers.SemiLinearPDE u_t = L u + N(u))"}


def test_one_step_bound(burgers, splits, perturbed):
    """``audit.one_step_bound``: the conformal bound of the worst one-step RMS error per calibration sample."""
    _, cal = splits
    step = solvers.stepper(burgers, DT, "etdrk1")
    ref = cal["u"].values
    one = np.asarray(jax.vmap(jax.vmap(step))(jnp.asarray(ref[:, :-1])))
    scores = np.sort(np.max(np.sqrt(np.mean((one - ref[:, 1:]) ** 2, axis=(2, 3))), axis=1))
    assert audit.one_step_bound(step, cal, 0.1) == pytest.approx(scores[17], rel=1e-9)  # k = ceil(20 * 0.9)
    assert audit.one_step_bound(step, cal, 0.5) == pytest.approx(scores[9], rel=1e-9)  # k = ceil(20 * 0.5)
    # the audit reports the same bound (its frames: all 8 steps both splits hold)
    assert perturbed[0].summary["conformal"]["one_step_rmse_bound"] == audit.one_step_bound(step, cal, 0.1, horizon=8)
    short = np.sort(np.sqrt(np.mean((one[:, 0] - ref[:, 1]) ** 2, axis=(1, 2))))
    assert audit.one_step_bound(step, cal, 0.1, horizon=1) == pytest.approx(short[17], rel=1e-9)
    with pytest.raises(audit.AuditError, match="horizon from 1 to 8"):
        audit.one_step_bound(step, cal, 0.1, horizon=9)


@pytest.mark.slow
def test_per_sample_physics_from_files(tmp_path):
    """Viscosity drawn per sample (a /params variable): the PDE is rebuilt per sample from the file."""
    import jax

    grid = solvers.Grid((N,))
    nus = np.r_[0.03, 0.05, 0.08, np.linspace(0.04, 0.08, 9)]

    def split(path, idx, seed):
        u0 = initial_conditions(grid, len(idx), seed)
        roll = jax.jit(lambda nu, u: solvers.rollout(fine(solvers.Burgers(grid, nu=nu), DT), u, 3))
        traj = np.stack([np.asarray(roll(nus[i], u)) for i, u in zip(idx, u0)])
        datasets.write(path, traj, t=DT * np.arange(4), grid=grid, error_estimate=np.full(traj.shape[:2], 1e-9),
                       params=nus[idx, None], param_names=["nu"], pde="burgers", rtol=1e-6, atol=1e-10)
        return datasets.open(path)

    test, cal = split(tmp_path / "test.h5", [0, 1, 2], 1), split(tmp_path / "cal.h5", list(range(3, 12)), 2)
    r = audit.run(fine(solvers.Burgers(grid, nu=0.05), DT), test, cal, "rel_l2<=0.01", config=quick_config(), repeats=1,
                  out_dir=tmp_path / "out")
    per_sample = r.summary["score"]["per_sample"]
    assert per_sample[1] < 1e-12 < 1e-3 < min(per_sample[0], per_sample[2])  # right viscosity only for sample 1
    residual = r.summary["physics"]["residual"]
    assert residual["prediction"]["max"] > 100 * residual["reference"]["max"]
    pred = datasets.open(tmp_path / "out" / "predictions.h5")
    assert pred["params"].values.ravel().tolist() == nus[:3].tolist()

    # a stepper that takes the sample's viscosity (with_params) is exact on every sample
    r = audit.run(lambda u, p: fine(solvers.Burgers(grid, nu=p[0]), DT)(u), test, cal, "rel_l2<=1e-10",
                  config=quick_config(), repeats=1, with_params=True)
    assert r.passed and max(r.summary["score"]["per_sample"]) < 1e-12
    with pytest.raises(audit.AuditError, match="no 'params'"):
        audit.run(lambda u, p: u, test.drop_vars("params"), cal, "rel_l2<=1", config=quick_config(), repeats=1,
                  with_params=True)


@pytest.mark.slow
def test_two_dimensional_two_channel_state(tmp_path):
    """2-D Burgers (two velocity channels): metrics, physics and the report on a 16x16 grid."""
    import jax
    import xarray as xr

    grid = solvers.Grid((16, 16))
    pde = solvers.Burgers(grid, nu=0.1)
    X, Y = grid.mesh()

    def split(n, seed):
        a = 0.3 * np.random.default_rng(seed).normal(size=(n, 2, 1, 1))
        u0 = np.stack([a[:, 0] * np.sin(X) + 0.1 * np.cos(Y), a[:, 1] * np.cos(Y)], -1)
        traj = np.asarray(jax.jit(jax.vmap(lambda u: solvers.rollout(fine(pde, 0.1, 4), u, 3)))(jnp.asarray(u0)))
        return xr.Dataset({"u": (("sample", "time", "x", "y", "channel"), traj),
                           "error_estimate": (("sample", "time"), np.full(traj.shape[:2], 1e-9))},
                          coords={"time": 0.1 * np.arange(4)}, attrs={"pde": "burgers", "rtol": 1e-6, "atol": 1e-10})

    test, cal = split(3, 1), split(9, 2)
    r = audit.run(solvers.stepper(pde, 0.1, "etdrk1"), test, cal, "nrmse<=1e6x", config=quick_config(), repeats=1,
                  pde=pde, out_dir=tmp_path)
    assert r.passed and r.predictions.shape == (3, 4, 16, 16, 2)
    assert r.summary["physics"]["conserved"] == {"mass": False, "energy": False}  # (u.grad)u is not conservative
    m = r.metrics
    assert np.allclose(m["low_freq"] ** 2 + m["mid_freq"] ** 2 + m["high_freq"] ** 2, m["rmse"] ** 2)
    assert 0 < r.summary["metrics"]["nrmse"]["max"] < 1
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5  # no cost-accuracy plot: the search was disabled
    assert "equal accuracy: skipped" in html


def test_repeats_below_one_is_refused_before_any_work():
    with pytest.raises(solvers.InputError, match="^repeats: must be >= 1, got 0"):
        audit.run(None, None, None, "rmse<=1", config=quick_config(), repeats=0)


def test_a_non_finite_residual_is_reported_not_a_crash(burgers, splits, tmp_path, monkeypatch):
    """A residual step that is unstable on the grid gives non-finite residuals, stored in report.json as
    "inf"/"nan" strings: the html report still renders (those points are not drawn)."""
    from audit import _report

    real = _report.write_outputs

    def with_non_finite_residual(out, summary, *args):
        res = summary["physics"]["residual"]
        for side, stat in (("prediction", "mean"), ("prediction", "max"), ("reference", "mean")):
            res[side]["per_step"][stat][-1] = "inf" if stat == "max" else "nan"
        return real(out, summary, *args)

    monkeypatch.setattr(_report, "write_outputs", with_non_finite_residual)
    test, cal = splits
    report = audit.run(fine(burgers, DT), test, cal, "rmse<=1x", config=quick_config(), repeats=1, pde=burgers,
                       out_dir=tmp_path)
    assert (tmp_path / "report.html").stat().st_size > 0
    written = json.loads((tmp_path / "report.json").read_text())["physics"]["residual"]
    assert written["prediction"]["per_step"]["max"][-1] == "inf"
    assert report.passed
