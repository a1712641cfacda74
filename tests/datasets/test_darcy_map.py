"""Steady map datasets (Darcy a -> u): config validation, the Li et al. coefficient, the file layout,
the honesty of the stored error bound, determinism, and the loader's (coefficient, solution) pairs."""

import numpy as np
import pytest
import xarray as xr

import datasets
import solvers
from datasets import CoefficientSpec, DatasetSpec, SplitSizes
from datasets._ic import draw_sample


def spec(n=8, **kw):
    kw.setdefault("splits", SplitSizes(train=3, val=0, calibration=0, test=2))
    kw.setdefault("rtol", 0.1)
    return DatasetSpec(pde="darcy", shape=(n, n), atol=1e-12, **kw)


@pytest.mark.parametrize("kwargs, key", [
    (dict(n_times=5), "n_times"), (dict(t_end=2.0), "t_end"), (dict(method="etdrk2"), "method"),
    (dict(length=(2.0, 2.0)), "length"), (dict(forcing="kolmogorov"), "forcing"),
])
def test_time_axis_fields_are_refused_for_a_steady_map(kwargs, key):
    with pytest.raises(ValueError, match=f"^{key}: does not apply|^{key}: must be"):
        spec(**kwargs)


def test_bad_steady_config_names_the_key():
    with pytest.raises(ValueError, match="^shape: must be a square"):
        DatasetSpec(pde="darcy", shape=(8, 16))
    with pytest.raises(ValueError, match="^low: must be > 0"):
        CoefficientSpec(low=0.0)
    with pytest.raises(ValueError, match="^source: applies to the steady map"):
        DatasetSpec(pde="burgers", shape=(16,), source=2.0)
    with pytest.raises(ValueError, match="^coefficient: applies to the steady map"):
        DatasetSpec(pde="burgers", shape=(16,), coefficient=CoefficientSpec(high=5.0))


def test_trajectory_identity_is_unchanged_by_the_steady_fields():
    ident = DatasetSpec(pde="burgers", shape=(16,)).identity("train")
    assert "coefficient" not in ident and "source" not in ident and "problem" not in ident
    ident = spec().identity("train")
    assert ident["problem"] == "steady_map" and "n_times" not in ident and "ic" not in ident


def test_threshold_grf_coefficient_is_two_valued_seeded_and_reproducible():
    s = spec(n=32, coefficient=CoefficientSpec(low=3.0, high=12.0))
    a0, p0 = draw_sample(s, "train", 0)
    a0b, _ = draw_sample(s, "train", 0)
    a1, _ = draw_sample(s, "train", 1)
    assert a0.shape == (32, 32, 1) and p0.shape == (0,)
    assert set(np.unique(a0)) == {3.0, 12.0}
    np.testing.assert_array_equal(a0, a0b)
    assert not np.array_equal(a0, a1)
    # zero-mean field thresholded at 0: about half the cells are high (over many samples)
    frac = np.mean([np.mean(draw_sample(s, "train", i)[0] == 12.0) for i in range(20)])
    assert 0.3 < frac < 0.7


@pytest.mark.slow
def test_generated_map_file_layout_bound_and_determinism(tmp_path):
    s = spec(n=8, rtol=0.2)
    paths = datasets.generate(s, tmp_path / "a", quiet=True)
    ds = datasets.open(paths["train"], verify=True)
    assert ds.attrs["problem"] == "steady_map"
    assert ds["u"].dims == ("sample", "stage", "x", "y", "channel") and ds["u"].shape == (3, 2, 8, 8, 1)
    assert "time" not in ds.variables
    np.testing.assert_array_equal(ds["stage"].values, [0, 1])
    np.testing.assert_allclose(ds["x"].values, (np.arange(8) + 0.5) / 8)
    raw = xr.open_dataset(paths["train"], engine="h5netcdf")  # netCDF readers see it as it is
    assert raw["stage"].attrs["flag_meanings"] == "input_coefficient_a output_solution_u"
    raw.close()
    u = ds["u"].values
    err = ds["error_estimate"].values
    np.testing.assert_array_equal(err[:, 0], 0.0)  # the coefficient is the exact input
    assert np.all(err[:, 1] > 0)
    for i in range(3):
        a = u[i, 0, ..., 0]
        np.testing.assert_array_equal(a, draw_sample(s, "train", i)[0][..., 0])
        sol = solvers.Darcy(solvers.Grid((8, 8), (1.0, 1.0)), coefficient=a, source=1.0).solve_steady(0.2, 1e-12)
        np.testing.assert_array_equal(u[i, 1], np.asarray(sol.u[0]))
        assert err[i, 1] == float(sol.error[0]) <= 0.2 * np.sqrt(np.mean(u[i, 1] ** 2)) + 1e-12
    np.testing.assert_allclose(ds.attrs["input_stats_mean"], np.mean(u[:, 0]))
    np.testing.assert_allclose(ds.attrs["stats_mean"], np.mean(u[:, 1]))
    pde, _ = datasets.pde_from_attrs(ds, sample=1)
    np.testing.assert_array_equal(np.asarray(pde.coefficient), u[1, 0, ..., 0])
    with pytest.raises(datasets.DatasetError, match="sample=i"):
        datasets.pde_from_attrs(ds)
    # same config, smaller batches: the same bytes
    again = datasets.generate(DatasetSpec(**{**s.__dict__, "batch_size": 1}), tmp_path / "b", quiet=True)
    assert datasets.open(again["train"]).attrs["sha256"] == ds.attrs["sha256"]


def test_stored_error_bound_is_honest_against_a_much_finer_solve(tmp_path):
    n, k = 16, 8
    s = spec(n=n, rtol=0.2, splits=SplitSizes(train=1, val=0, calibration=0, test=0))
    ds = datasets.open(datasets.generate(s, tmp_path, quiet=True)["train"])
    a, u, bound = ds["u"].values[0, 0, ..., 0], ds["u"].values[0, 1, ..., 0], float(ds["error_estimate"][0, 1])
    # the same piecewise-constant coefficient on 8x finer cells; a coarse centre sits at the corner of four
    # fine cells, whose mean is the fine solution there to second order in the fine spacing
    fine = solvers.Darcy(solvers.Grid((n * k, n * k), (1.0, 1.0)), coefficient=np.kron(a, np.ones((k, k))),
                         source=1.0)
    uf = np.asarray(fine.solve_linear()[0])
    j = np.arange(n) * k + k // 2
    at_centres = (uf[j - 1][:, j - 1] + uf[j - 1][:, j] + uf[j][:, j - 1] + uf[j][:, j]) / 4
    true = float(np.sqrt(np.mean((u - at_centres) ** 2)))
    assert true <= bound <= 10 * true


def test_loader_pairs_coefficient_with_solution_each_normalised_by_its_own_stats(tmp_path):
    path = datasets.generate(spec(n=8), tmp_path, quiet=True)["train"]
    ds = datasets.open(path)
    u = ds["u"].values
    with datasets.Loader(path, batch_size=3, shuffle=False, prefetch=0) as loader:
        assert len(loader) == 3
        b = loader.batch(0)
        assert b["input"].shape == (3, 8, 8, 1) and b["target"].shape == (3, 1, 8, 8, 1)
        np.testing.assert_allclose(loader.input_stats.denormalize(b["input"].astype(np.float64)), u[:, 0],
                                   rtol=1e-5)
        np.testing.assert_allclose(loader.stats.denormalize(b["target"][:, 0].astype(np.float64)), u[:, 1],
                                   rtol=1e-5, atol=1e-9)
        assert abs(float(np.mean(b["target"]))) < 1e-4  # the solution's own statistics, not the coefficient's
    with pytest.raises(ValueError, match="^target_steps: a steady map"):
        datasets.Loader(path, batch_size=1, target_steps=2)


WORKER = """
import sys, jax, datasets
from datasets import DatasetSpec, SplitSizes
spec = DatasetSpec(pde="darcy", shape=(8, 8), rtol=0.2, atol=1e-12, batch_size=3,
                   splits=SplitSizes(train=5, val=0, calibration=0, test=0))
path = datasets.generate(spec, sys.argv[1], quiet=True)["train"]
print(jax.device_count(), datasets.open(path).attrs["sha256"])
"""


@pytest.mark.slow
def test_map_generation_sharded_over_four_devices_gives_the_same_bytes(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4")
    out = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "four")], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    devices, sha = out.stdout.split()[-2:]
    one = datasets.generate(spec(n=8, rtol=0.2, batch_size=3, splits=SplitSizes(train=5, val=0, calibration=0,
                                                                                test=0)), tmp_path / "one",
                            quiet=True)["train"]
    assert devices == "4" and sha == datasets.open(one).attrs["sha256"]


@pytest.mark.slow
def test_interrupted_map_generation_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    from datasets import _generate

    s = spec(n=8, rtol=0.2, batch_size=2, splits=SplitSizes(train=5, val=0, calibration=0, test=0))
    whole = datasets.open(datasets.generate(s, tmp_path / "whole", quiet=True)["train"]).attrs["sha256"]
    real, calls = _generate._solve_block, []

    def dies_on_second_block(*args):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after the first block was journalled
        return real(*args)

    monkeypatch.setattr(_generate, "_solve_block", dies_on_second_block)
    with pytest.raises(KeyboardInterrupt):
        datasets.generate(s, tmp_path / "cut", quiet=True)
    monkeypatch.setattr(_generate, "_solve_block", real)
    resumed = datasets.generate(s, tmp_path / "cut", quiet=True)["train"]
    assert datasets.open(resumed, verify=True).attrs["sha256"] == whole
    assert calls[0] == [0, 1]
