"""audit.crossover: the cost fits and the crossing of speedup 1 on synthetic rows, and the study on tiny Burgers
data with stand-in surrogates (the solver's own fine step at any grid, so errors and strides are known)."""

import dataclasses
import json

import numpy as np
import pytest
from jax import lax

import audit
import datasets
import solvers
from audit import CrossoverConfig, CrossoverModel, find_crossing, fit_power_law, model_grid_problem, model_stride
from audit._crossover import PowerLaw

GRIDS = [32, 64, 128, 256]


# ------------------------------------------------------------------------------------------- fits, crossing
def test_fit_recovers_a_power_law():
    points = np.array([32.0, 64.0, 128.0, 256.0]) ** 2
    fit = fit_power_law(points, 3e-6 * points**1.37)
    assert fit.p == pytest.approx(1.37, rel=1e-9)
    assert fit.a == pytest.approx(3e-6, rel=1e-9)
    assert fit.sizes == 4
    assert fit_power_law([64.0, 64.0], [1.0, 2.0]) is None  # one size: no slope
    assert fit_power_law([64.0, 128.0], [1.0, float("nan")]) is None


def _laws(sur: PowerLaw, sol: PowerLaw, ndim=1, grids=GRIDS):
    """Speedups measured exactly on the laws, and the laws fitted back from those 'measurements'."""
    points = np.asarray(grids, dtype=np.float64) ** ndim
    s_sur, s_sol = sur(points), sol(points)
    return list(s_sol / s_sur), fit_power_law(points, s_sur), fit_power_law(points, s_sol)


def test_measured_bracket():
    c = find_crossing(GRIDS, 1, [0.5, 0.8, 1.6, 3.0], None, None)
    assert c.kind == "measured" and c.between == (64, 128)
    assert 64 < c.grid < 128 and c.pays_above
    # log-log interpolation: 0.8 -> 1.6 doubles over a doubling of the grid, so 1 is at 64 * 1.25
    assert c.grid == pytest.approx(64 * 1.25)
    assert c.to_json()["between"] == [64, 128]
    falling = find_crossing(GRIDS, 1, [3.0, 1.2, 0.7, 0.4], None, None)
    assert falling.kind == "measured" and falling.between == (64, 128) and not falling.pays_above


@pytest.mark.parametrize("ndim", [1, 2])
def test_extrapolated_above(ndim):
    # speedup = 1e-2 N^0.7 -> 1 at N* = 100^(1/0.7): beyond 256^ndim points only for ndim 1
    sur, sol = PowerLaw(1e-3, 0.5, 0), PowerLaw(1e-5, 1.2, 0)
    n_star = 100 ** (1 / 0.7)
    grids = GRIDS if ndim == 1 else [8, 12, 16, 20]
    speedups, fs, fl = _laws(sur, sol, ndim, grids)
    assert max(speedups) < 1
    c = find_crossing(grids, ndim, speedups, fs, fl)
    assert c.kind == "extrapolated" and c.direction == "above" and c.pays_above
    assert c.grid == pytest.approx(n_star ** (1 / ndim), rel=1e-6)
    assert c.beyond == pytest.approx(n_star / grids[-1] ** ndim, rel=1e-6)
    assert "extrapolated" in c.to_json()["note"] and "EXTRAPOLATED" in c.sentence()


def test_extrapolated_below():
    # speedup = 3 N^-0.5: < 1 at every measured size, 1 at N = 9 (a grid of 9 points)
    sur, sol = PowerLaw(1e-4, 1.0, 0), PowerLaw(3e-4, 0.5, 0)
    speedups, fs, fl = _laws(sur, sol)
    c = find_crossing(GRIDS, 1, speedups, fs, fl)
    assert c.kind == "extrapolated" and c.direction == "below" and not c.pays_above
    assert c.grid == pytest.approx(9.0, rel=1e-6)


def test_no_crossing():
    same = _laws(PowerLaw(1e-3, 1.0, 0), PowerLaw(1e-5, 1.0, 0))
    c = find_crossing(GRIDS, 1, *same)
    assert c.kind == "none" and "scale alike" in c.reason and c.grid is None
    # the quick start's case: speedup falls with the grid and would reach 1 below any usable grid
    tiny = _laws(PowerLaw(1.7e-5, 1.0, 0), PowerLaw(4.7e-6, 0.41, 0))
    c = find_crossing(GRIDS, 1, *tiny)
    assert c.kind == "none" and "below any grid" in c.reason
    # speedup 1e-3 N^0.1 reaches 1 at N = 1e30: far beyond the measured sizes, not extrapolated
    far = _laws(PowerLaw(1e-3, 1.0, 0), PowerLaw(1e-6, 1.1, 0))
    c = find_crossing(GRIDS, 1, *far)
    assert c.kind == "none" and "not extrapolated beyond" in c.reason
    assert find_crossing([64], 1, [0.5], None, None).kind == "none"
    assert find_crossing([], 1, [], None, None).reason == "no size was measured"
    assert set(c.to_json()) == {"kind", "reason"}


def test_config_and_model_metadata():
    assert CrossoverConfig(shapes=[128, 32, 64, 64]).shapes == (32, 64, 128)
    for bad in ([64], [4, 64], [32.5, 64], "32,64"):
        with pytest.raises(ValueError, match="shapes"):
            CrossoverConfig(shapes=bad)
    with pytest.raises(ValueError, match="samples"):
        CrossoverConfig(samples=0)
    assert model_stride({}, "m") == 1
    assert model_stride({"stride": 4}, "m") == 4
    assert model_stride({"model_config": {"stride": 2}}, "m") == 2
    for bad in (0, True, "2", 2.0):
        with pytest.raises(audit.AuditError, match="stride"):
            model_stride({"stride": bad}, "m")
    fno = {"kind": "fno", "modes": [32]}
    assert model_grid_problem(fno, (32,)) is None  # 17 rfft wavenumbers hold modes 0..16
    assert "modes" in model_grid_problem(fno, (16,))
    assert "modes" in model_grid_problem({"kind": "fno", "modes": [12]}, (8, 8))
    unet = {"kind": "unet", "multipliers": [1, 2, 4]}
    assert model_grid_problem(unet, (32,)) is None and "divisible by 4" in model_grid_problem(unet, (30,))
    assert model_grid_problem({"kind": "resnet"}, (17,)) is None


# ------------------------------------------------------------------------------------- the study, stand-ins
NU, DT = 0.2, 0.1
SPEC = datasets.DatasetSpec(pde="burgers", params={"nu": NU}, shape=(32,), t_end=0.4, n_times=5, rtol=1e-5,
                            ic=datasets.ICSpec(kind="fourier", cutoff=2, amplitude=0.3), seed=3)
CONFIG = audit.AuditConfig(requirement="rel_l2<=1", horizon=2, quantile=1.0, equal_accuracy=audit.EqualAccuracyConfig(
    coarsen=(1,), substeps=(1, 2), methods=("etdrk1",), rtols=()))


def _exact(interval, perturb=0.0):
    """A stand-in surrogate at any grid: 8 ETDRK4 steps of the reference PDE over ``interval``, times 1 + perturb."""
    def step(u):
        pde = solvers.Burgers(solvers.Grid(u.shape[:-1], (2 * np.pi,)), nu=NU)
        s = solvers.stepper(pde, interval / 8)
        return (1 + perturb) * lax.fori_loop(0, 8, lambda i, v: s(v), u)
    return step


def _models():
    return [CrossoverModel("exact", _exact(DT, 0.02)),
            CrossoverModel("stride2", _exact(2 * DT, 0.02), stride=2),
            CrossoverModel("big-only", _exact(DT), grid_problem=lambda shape: None if shape[0] >= 64 else
                           "needs 64 points")]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    cache = tmp_path_factory.mktemp("crossover")
    res = audit.crossover(SPEC, _models(), shapes=[32, 64], samples=2, cache=cache, config=CONFIG, repeats=1)
    return res, cache


@pytest.mark.slow  # the study's set-up: ~40 s on 2 loaded cores
def test_study_rows(study):
    res, cache = study
    assert [(r.grid, r.model) for r in res.rows] == [(g, m) for g in (32, 64) for m in ("exact", "stride2", "big-only")]
    skipped = [r for r in res.rows if r.status == "skipped"]
    assert [(r.grid, r.model, r.reason) for r in skipped] == [(32, "big-only", "needs 64 points")]
    for r in res.rows:
        if r.status != "measured":
            continue
        assert r.steps == 2 and r.samples == 2 and r.stride == (2 if r.model == "stride2" else 1)
        # the perturbed step's error: 2 steps of a 2 % scaling, relative L2 ~ 1.02^2 - 1 (the exact one's ~ 0)
        expected = 1.02**2 - 1 if r.model != "big-only" else 0.0
        assert r.surrogate_error == pytest.approx(expected, abs=2e-3)
        assert r.speedup == pytest.approx(r.solver_seconds / r.surrogate_seconds)
        assert r.solver_error <= r.surrogate_error * (1 + 1e-9) or r.speedup_bound == "lower"
    s = res.summary
    json.dumps(s, allow_nan=False)
    assert {"rows", "series", "scaling", "crossing", "requirement", "error_definition"} <= set(s)
    assert [x["model"] for x in s["series"]] == ["exact", "stride2", "big-only"]
    assert s["crossing"]["kind"] in ("measured", "extrapolated", "none")
    assert (cache / "32-s2" / "test.h5").is_file() and (cache / "64-s2" / "test.h5").is_file()


@pytest.mark.slow  # the study's set-up: ~40 s on 2 loaded cores
def test_references_are_the_data_config_at_each_size(study):
    """Each size's reference set is the data config (PDE, tolerance, time axis, seed) on that grid."""
    _, cache = study
    for n in (32, 64):
        ds = datasets.open(cache / f"{n}-s2" / "test.h5")
        assert ds["u"].shape == (2, SPEC.n_times, n, 1)
        assert int(ds.attrs["grid_shape"]) == n and float(ds.attrs["rtol"]) == SPEC.rtol
        assert int(ds.attrs["seed"]) == SPEC.seed and ds.attrs["pde"] == "burgers"
        np.testing.assert_allclose(ds["time"].values, np.linspace(0, SPEC.t_end, SPEC.n_times))


@pytest.mark.slow  # the study's set-up: ~40 s on 2 loaded cores
def test_rerun_reuses_cached_data(study, monkeypatch):
    _, cache = study
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.h5")}

    def no_solving(*args, **kwargs):
        raise AssertionError("a cached reference set was regenerated")

    monkeypatch.setattr("datasets._generate._generate_range", no_solving)
    res = audit.crossover(SPEC, _models()[:1], shapes=[32, 64], samples=2, cache=cache, config=CONFIG, repeats=1)
    assert [r.status for r in res.rows] == ["measured", "measured"]
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.h5")} == before


def test_original_test_file_is_reused_at_its_size(tmp_path, monkeypatch):
    data = tmp_path / "data"
    spec = audit._crossover.reference_spec(SPEC, 32, 3)
    datasets.generate(spec, data, quiet=True)
    refs = audit._crossover.reference_sets(SPEC, [32], 2, tmp_path / "cache", original=data / "test.h5")
    assert refs[32].sizes["sample"] == 2 and not (tmp_path / "cache").exists()
    # a file of another config (here another seed) is not reused
    other = tmp_path / "other"
    datasets.generate(audit._crossover.reference_spec(dataclasses.replace(SPEC, seed=4), 32, 3), other,
                      quiet=True)
    audit._crossover.reference_sets(SPEC, [32], 2, tmp_path / "cache", original=other / "test.h5")
    assert (tmp_path / "cache" / "32-s2" / "test.h5").is_file()


@pytest.mark.slow  # the study's set-up: ~40 s on 2 loaded cores
def test_plot_writes_a_png(study, tmp_path):
    res, _ = study
    res.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "stride 2" in res.sentence() and ("crosses 1" in res.sentence() or "no crossing" in res.sentence())


def test_bad_inputs(tmp_path):
    with pytest.raises(audit.AuditError, match="at least one model"):
        audit.crossover(SPEC, [], shapes=[32, 64], samples=2, cache=tmp_path, config=CONFIG)
    with pytest.raises(ValueError, match="shapes"):
        audit.crossover(SPEC, _models(), shapes=[32], samples=2, cache=tmp_path, config=CONFIG)
    with pytest.raises(audit.AuditError, match="stride"):
        CrossoverModel("m", _exact(DT), stride=0)


def test_unresolvable_size_is_a_marked_row_and_not_solved_again(tmp_path, monkeypatch):
    """A size the solver cannot resolve gives skipped rows with the reason; the failure is recorded, so a rerun
    does not solve again, while a record made for another config is not trusted."""
    calls = []

    def unresolvable(spec, folder, **kwargs):
        calls.append(spec.shape)
        raise solvers.ResolutionError(f"grid {spec.shape} cannot resolve the solution to the tolerance")

    monkeypatch.setattr(datasets, "generate", unresolvable)
    for _ in range(2):
        refs = audit._crossover.reference_sets(SPEC, [8, 16], 2, tmp_path)
        assert all(isinstance(r, str) and "cannot resolve" in r for r in refs.values())
    assert calls == [(8,), (16,)]
    audit._crossover.reference_sets(dataclasses.replace(SPEC, seed=9), [8], 2, tmp_path)
    assert calls == [(8,), (16,), (8,)]
    res = audit.crossover(SPEC, _models()[:1], shapes=[8, 16], samples=2, cache=tmp_path, config=CONFIG)
    assert [(r.grid, r.status) for r in res.rows] == [(8, "skipped"), (16, "skipped")]
    assert "cannot resolve" in res.rows[0].reason and set(res.summary["skipped_sizes"]) == {"8", "16"}
    assert res.summary["crossing"]["kind"] == "none"
