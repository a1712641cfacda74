"""Each PDEBench and The Well layout, written here the way those projects' writers write it (small sizes),
imported and checked; uniform time axes; seeded split files."""

import json

import h5py
import numpy as np
import pytest

import datasets
import solvers


# ------------------------------------------------------------------------------------------ time axes
def test_uniform_spacing_accepts_float32_rounding_and_refuses_real_non_uniform():
    t32 = np.arange(42, dtype=np.float32) * np.float32(0.05)  # PDEBench burgers: jnp.arange(it_tot + 1) * dt_save
    steps = np.diff(t32.astype(np.float64))
    assert steps.min() < 0.05 - 1e-8 and steps.max() > 0.05 + 1e-8  # really not equal steps
    assert datasets.uniform_spacing(t32) == pytest.approx(0.05, rel=1e-12)
    # converted to float64, the values still carry float32 rounding: say so with dtype
    with pytest.raises(solvers.InputError, match="time: not uniformly spaced"):
        datasets.uniform_spacing(t32.astype(np.float64), name="time")
    assert datasets.uniform_spacing(t32.astype(np.float64), np.float32) == pytest.approx(0.05, rel=1e-12)
    bad = t32.copy()
    bad[20] += np.float32(1e-3)  # a real departure, far above the rounding
    with pytest.raises(solvers.InputError, match="t-coordinate: not uniformly spaced"):
        datasets.uniform_spacing(bad, name="t-coordinate")
    with pytest.raises(solvers.InputError, match="not increasing"):
        datasets.uniform_spacing([0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        datasets.uniform_spacing([0.0])


def _burgers(path, n=10, nt=6, nx=32):
    """As burgers_multi_solution_Hydra + Data_Merge.transform: float32 jnp arrays, cell centres on [-1, 1]."""
    xe = np.linspace(-1, 1, nx + 1, dtype=np.float32)
    xc = xe[:-1] + np.float32(0.5) * (xe[1] - xe[0])
    tc = np.arange(nt + 1, dtype=np.float32) * np.float32(0.05)
    u = np.random.default_rng(0).normal(size=(n, nt, nx)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=u)
        f.create_dataset("x-coordinate", data=xc)
        f.create_dataset("t-coordinate", data=tc)
        f.attrs["Nu"] = 0.01
    return u, xc, tc


def test_pdebench_burgers_time_axis_is_uniform(tmp_path):
    src, out = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5", tmp_path / "b.h5"
    u, xc, tc = _burgers(src)
    datasets.import_pdebench(src, out, pde="burgers", pde_params={"nu": 0.01})
    ds = datasets.open(out, verify=True)
    t = ds["time"].values
    np.testing.assert_array_equal(t, np.arange(6) * 0.05)  # exact t0 + k dt in float64
    assert datasets.uniform_spacing(t) == pytest.approx(0.05, rel=1e-12)  # uniform as stored, float64 rules
    assert ds.attrs["time_spacing"] == pytest.approx(0.05, rel=1e-12)
    np.testing.assert_array_equal(ds["source_time"].values, tc)  # all 7 stored values, float32, kept
    assert ds["source_time"].dtype == np.float32
    np.testing.assert_array_equal(ds["u"].values[..., 0], u)
    np.testing.assert_array_equal(ds["x"].values, xc.astype(np.float64))
    assert ds.attrs["grid_length"] == pytest.approx(2.0, rel=1e-6)
    assert json.loads(ds.attrs["dropped"]) == {}
    ds.close()


def test_non_uniform_time_is_kept_as_stored(tmp_path):
    src, out = tmp_path / "adv.h5", tmp_path / "o.h5"
    t = np.array([0.0, 0.1, 0.3, 0.7])
    with h5py.File(src, "w") as f:
        f["tensor"] = np.ones((2, 4, 8))
        f["x-coordinate"] = np.arange(8) / 8
        f["t-coordinate"] = t
    datasets.import_pdebench(src, out)
    ds = datasets.open(out)
    np.testing.assert_array_equal(ds["time"].values, t)
    assert np.isnan(ds.attrs["time_spacing"]) and "source_time" not in ds
    with pytest.raises(solvers.InputError, match="time: not uniformly spaced"):
        datasets.uniform_spacing(ds["time"].values, name="time")
    ds.close()


# ------------------------------------------------------------------------------------------ PDEBench
def _darcy(path, n=6, m=8, beta=1.0, attr=True, extra=False):
    """As Data_Merge.merge(type="ReacDiff"): tensor (N, 1, X, Y), nu (N, X, Y), cell centres, attrs beta."""
    rng = np.random.default_rng(5)
    xc = ((np.arange(m) + 0.5) / m).astype(np.float32)
    sol = rng.random((n, 1, m, m)).astype(np.float32)
    nu = np.where(rng.normal(size=(n, m, m)) > 0, 1.0, 0.1).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("tensor", data=sol)
        f.create_dataset("nu", data=nu)
        f.create_dataset("x-coordinate", data=xc)
        f.create_dataset("y-coordinate", data=xc)
        if attr:
            f.attrs["beta"] = beta
        if extra:
            f.create_dataset("notes", data=np.zeros(3))
    return sol, nu


def test_pdebench_darcy_is_a_steady_map(tmp_path):
    src, out = tmp_path / "2D_DarcyFlow_beta0.1_Train.hdf5", tmp_path / "d.h5"
    sol, nu = _darcy(src, beta=0.1, extra=True)
    datasets.import_pdebench(src, out)
    ds = datasets.open(out, verify=True)
    assert ds.attrs["problem"] == "steady_map" and ds.attrs["pde"] == "darcy"
    assert json.loads(ds.attrs["pde_params"]) == {"source": pytest.approx(0.1)}
    assert ds["u"].dims[1] == "stage" and ds["u"].shape == (6, 2, 8, 8, 1)
    np.testing.assert_array_equal(ds["u"].values[:, 0, ..., 0], nu)  # stage 0: the coefficient
    np.testing.assert_array_equal(ds["u"].values[:, 1, ..., 0], sol[:, 0])  # stage 1: the solution
    np.testing.assert_allclose(ds["x"].values, (np.arange(8) + 0.5) / 8)
    assert list(ds.attrs["grid_length"]) == [1.0, 1.0]
    assert json.loads(ds.attrs["dropped"]) == {"notes": "not part of the PDEBench Darcy layout"}
    np.testing.assert_array_equal(ds["error_estimate"].values[:, 0], 0.0)
    pde, grid = datasets.pde_from_attrs(ds, 2)
    assert isinstance(pde, solvers.Darcy) and grid.shape == (8, 8)
    ds.close()
    loader = datasets.Loader(out, batch_size=2)
    b = loader.batch(0)
    assert b["input"].shape == (2, 8, 8, 1) and b["target"].shape == (2, 1, 8, 8, 1)


def test_pdebench_darcy_source_from_the_name_or_refused(tmp_path):
    src = tmp_path / "2D_DarcyFlow_beta100.0_Train.hdf5"
    _darcy(src, attr=False)
    ds = datasets.import_pdebench(src)
    assert json.loads(ds.attrs["pde_params"]) == {"source": 100.0}
    nameless = tmp_path / "darcy.hdf5"
    _darcy(nameless, attr=False)
    with pytest.raises(solvers.InputError, match="--param source"):
        datasets.import_pdebench(nameless)
    assert json.loads(datasets.import_pdebench(nameless, pde_params={"source": 2.0}).attrs["pde_params"]) == {
        "source": 2.0}
    with pytest.raises(solvers.InputError, match="steady map of pde darcy"):
        datasets.import_pdebench(src, pde="burgers")


@pytest.mark.parametrize("dim", [2, 3])
def test_pdebench_compressible_cfd(tmp_path, dim):
    """As Data_Merge.merge(type="CFD"): density, pressure, Vx, Vy[, Vz] (N, T, X, Y[, Z]) and coordinates."""
    src, out = tmp_path / f"{dim}D_CFD_Rand_Eta0.1_Zeta0.1_periodic_Train.hdf5", tmp_path / "c.h5"
    rng = np.random.default_rng(dim)
    shape = (3, 4, 6, 5, 4)[: 2 + dim]
    names = ["density", "pressure", "Vx", "Vy", "Vz"][: 2 + dim]
    data = {k: rng.random(shape).astype(np.float32) for k in names}
    with h5py.File(src, "w") as f:
        for k in names:
            f.create_dataset(k, data=data[k])
        for c, m in zip("xyz"[:dim], shape[2:]):
            f.create_dataset(f"{c}-coordinate", data=((np.arange(m) + 0.5) / m).astype(np.float32))
        f.create_dataset("t-coordinate", data=np.linspace(0, 1, 5).astype(np.float32))  # T + 1 values
        f.attrs.update(eta=0.1, zeta=0.1, M=1.0)
    datasets.import_pdebench(src, out)
    ds = datasets.open(out, verify=True)
    assert list(ds["channel"].values) == names
    assert ds["u"].shape == (*shape, len(names))
    for j, k in enumerate(names):
        np.testing.assert_array_equal(ds["u"].values[..., j], data[k])
    assert ds.attrs["time_spacing"] == pytest.approx(0.25, rel=1e-12)
    assert json.loads(ds.attrs["source_attrs"])["M"] == 1.0
    ds.close()


def test_pdebench_incompressible_ns(tmp_path):
    """As gen_ns_incomp (data_io.h5_for): velocity, particles, force, t; float32, lzf chunks, config as YAML."""
    src, out = tmp_path / "ns_sim_2d-1.h5", tmp_path / "ns.h5"
    n, nt, m = 2, 5, 8
    rng = np.random.default_rng(7)
    vel = rng.normal(size=(n, nt, m, m, 2)).astype(np.float32)
    par = rng.random((n, nt, m, m, 1)).astype(np.float32)
    force = rng.normal(size=(n, m, m, 2)).astype(np.float32)
    t = np.tile(np.linspace(0, 0.02, nt, dtype=np.float32), (n, 1))
    with h5py.File(src, "w") as f:
        f.attrs["config"] = "sim_name: ns_sim_2d\nNU: 0.01\n"
        f.attrs["latestIndex"] = n - 1
        for name, a in (("velocity", vel), ("particles", par), ("force", force), ("t", t)):
            f.require_dataset(name, a.shape, "float32", compression="lzf", chunks=(1, *a.shape[1:]) if a.ndim < 4
                              else (1, 1, *a.shape[2:]), shuffle=True)[...] = a
    datasets.import_pdebench(src, out)
    ds = datasets.open(out, verify=True)
    assert list(ds["channel"].values) == ["velocity_x", "velocity_y", "particles"]
    np.testing.assert_array_equal(ds["u"].values[..., :2], vel)
    np.testing.assert_array_equal(ds["u"].values[..., 2:], par)
    np.testing.assert_array_equal(ds["force"].values, force)
    assert ds["force"].dims == ("sample", "x", "y", "component")
    np.testing.assert_allclose(ds["time"].values, np.linspace(0, 0.02, nt), rtol=1e-6)
    assert ds.attrs["source_layout"] == "ns_incomp" and json.loads(ds.attrs["dropped"]) == {}
    ds.close()


# ------------------------------------------------------------------------------------------ The Well
def _well(path, *, n=2, nt=4, nx=8, ny=6, schmidt=(0.1, 1.0), reynolds=1e4, seed=4):
    """As The Well's data format (docs/data_format.md; scripts/check_thewell_formatting.py shapes)."""
    rng = np.random.default_rng(seed)
    out = {"tracer": rng.normal(size=(n, nt, nx, ny)).astype(np.float32),
           "profile": rng.normal(size=(n, nt, ny)).astype(np.float32),  # dim_varying [False, True]
           "velocity": rng.normal(size=(n, nt, nx, ny, 2)).astype(np.float32),
           "mask": rng.random((nx, ny)).astype(np.float32),  # not sample/time varying
           "stress0": rng.normal(size=(n, nx, ny, 2, 2)).astype(np.float32),  # sample, not time varying
           "energy": rng.random((n, nt)).astype(np.float32)}
    with h5py.File(path, "w") as f:
        f.attrs.update(dataset_name="shear_flow", grid_type="cartesian", n_spatial_dims=2, n_trajectories=n,
                       simulation_parameters=["Reynolds"], Reynolds=reynolds)
        d = f.create_group("dimensions")
        d.attrs["spatial_dims"] = ["x", "y"]
        d["time"] = np.linspace(0, 1.5, nt).astype(np.float32)
        d["time"].attrs.update(sample_varying=False, time_varying=True)
        d["x"] = np.linspace(0, 1, nx, endpoint=False).astype(np.float32)
        d["y"] = np.linspace(0, 2, ny, endpoint=False).astype(np.float32)
        for name in ("x", "y"):
            d[name].attrs.update(sample_varying=False, time_varying=False)
        b = f.create_group("boundary_conditions")
        bc = b.create_group("y_wall")
        bc.attrs.update(associated_dims=["y"], associated_fields=[], bc_type="wall", sample_varying=False,
                        time_varying=False)
        mask = np.zeros(ny, bool)
        mask[[0, -1]] = True
        bc["mask"] = mask
        bc["values"] = np.array([0.0, 1.0], np.float32)
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["tracer", "profile", "mask"]
        t0["tracer"] = out["tracer"]
        t0["tracer"].attrs.update(sample_varying=True, time_varying=True, dim_varying=[True, True])
        t0["profile"] = out["profile"]
        t0["profile"].attrs.update(sample_varying=True, time_varying=True, dim_varying=[False, True])
        t0["mask"] = out["mask"]
        t0["mask"].attrs.update(sample_varying=False, time_varying=False, dim_varying=[True, True])
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"]
        t1["velocity"] = out["velocity"]
        t1["velocity"].attrs.update(sample_varying=True, time_varying=True, dim_varying=[True, True])
        t2 = f.create_group("t2_fields")
        t2.attrs["field_names"] = ["stress0"]
        t2["stress0"] = out["stress0"]
        t2["stress0"].attrs.update(sample_varying=True, time_varying=False, dim_varying=[True, True],
                                   symmetric=False, antisymmetric=False)
        sc = f.create_group("scalars")
        sc.attrs["field_names"] = ["Reynolds", "Schmidt", "energy"]
        sc["Reynolds"] = np.array([reynolds], np.float32)
        sc["Reynolds"].attrs.update(sample_varying=False, time_varying=False)
        sc["Schmidt"] = np.array(schmidt, np.float32)
        sc["Schmidt"].attrs.update(sample_varying=True, time_varying=False)
        sc["energy"] = out["energy"]
        sc["energy"].attrs.update(sample_varying=True, time_varying=True)
    return out


def test_the_well_keeps_constant_fields_bcs_and_partly_varying_fields(tmp_path):
    src, out = tmp_path / "shear_flow_Reynolds_1e4.hdf5", tmp_path / "w.h5"
    a = _well(src)
    datasets.import_the_well(src, out)
    ds = datasets.open(out, verify=True)
    assert list(ds["channel"].values) == ["tracer", "profile", "velocity_x", "velocity_y"]
    np.testing.assert_array_equal(ds["u"].values[..., 0], a["tracer"])
    # the profile does not vary along x: broadcast along it
    np.testing.assert_array_equal(ds["u"].values[..., 1], np.broadcast_to(a["profile"][:, :, None], (2, 4, 8, 6)))
    np.testing.assert_array_equal(ds["field_mask"].values, a["mask"])
    assert ds["field_mask"].dims == ("x", "y")
    np.testing.assert_array_equal(ds["field_stress0"].values, a["stress0"])
    assert ds["field_stress0"].dims == ("sample", "x", "y", "component", "component_j")
    np.testing.assert_array_equal(ds["scalar_energy"].values, a["energy"])
    np.testing.assert_array_equal(ds["bc_y_wall_mask"].values, [1, 0, 0, 0, 0, 1])
    assert ds["bc_y_wall_mask"].dims == ("y",)
    np.testing.assert_array_equal(ds["bc_y_wall_values"].values, [0.0, 1.0])
    assert json.loads(ds.attrs["boundary_conditions"])["y_wall"]["bc_type"] == "wall"
    assert json.loads(ds.attrs["source_skipped_fields"]) == ["t0_fields/mask", "t2_fields/stress0"]
    assert json.loads(ds.attrs["dropped"]) == {}
    assert ds.attrs["time_spacing"] == pytest.approx(0.5, rel=1e-12)
    ds.close()


def test_the_well_split_folder_is_one_dataset(tmp_path):
    root = tmp_path / "shear_flow"
    folder = root / "data" / "train"
    folder.mkdir(parents=True)
    (root / "stats.yaml").write_text("mean:\n  tracer: 0.0\nstd:\n  tracer: 1.0\n")
    a = _well(folder / "shear_flow_Reynolds_1e4.hdf5", schmidt=(0.1, 1.0), reynolds=1e4, seed=1)
    b = _well(folder / "shear_flow_Reynolds_1e5.hdf5", n=3, schmidt=(2.0, 3.0, 4.0), reynolds=1e5, seed=2)
    out = tmp_path / "w.h5"
    datasets.import_the_well(folder, out)
    ds = datasets.open(out, verify=True)
    assert ds["u"].shape == (5, 4, 8, 6, 4)
    np.testing.assert_array_equal(ds["u"].values[:2, ..., 0], a["tracer"])
    np.testing.assert_array_equal(ds["u"].values[2:, ..., 0], b["tracer"])
    names = list(ds["param"].values)
    np.testing.assert_allclose(ds["params"].values[:, names.index("Schmidt")], [0.1, 1, 2, 3, 4], rtol=1e-6)
    # a constant of each file that differs between the files becomes a per-sample parameter
    np.testing.assert_allclose(ds["params"].values[:, names.index("Reynolds")], [1e4, 1e4, 1e5, 1e5, 1e5])
    # a constant field that differs between the files becomes per sample
    assert ds["field_mask"].dims == ("sample", "x", "y")
    np.testing.assert_array_equal(ds["field_mask"].values[1], a["mask"])
    np.testing.assert_array_equal(ds["field_mask"].values[4], b["mask"])
    np.testing.assert_array_equal(ds["field_stress0"].values[2:], b["stress0"])
    assert "tracer: 0.0" in ds.attrs["source_stats_yaml"]
    assert json.loads(ds.attrs["source_files"]) == ["shear_flow_Reynolds_1e4.hdf5", "shear_flow_Reynolds_1e5.hdf5"]
    ds.close()


# ------------------------------------------------------------------------------------------ splits
def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_splits_are_a_seeded_permutation_and_rerun_identical(tmp_path):
    src = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
    u, _, _ = _burgers(src, n=20)
    out = tmp_path / "data"
    paths = datasets.import_splits("pdebench", src, out, seed=3)
    sizes = {s: datasets.open(p)["u"].shape[0] for s, p in paths.items()}
    assert sizes == {"train": 14, "val": 2, "calibration": 2, "test": 2}  # the default fractions
    perm = np.random.default_rng(3).permutation(20)
    seen = []
    for split, p in paths.items():
        ds = datasets.open(p, verify=True)
        idx = np.asarray(ds.attrs["source_samples"])
        np.testing.assert_array_equal(ds["u"].values[..., 0], u[idx])
        assert ds.attrs["split"] == split and ds.attrs["seed"] == 3
        seen += list(idx)
        ds.close()
    np.testing.assert_array_equal(seen, perm)  # cut in order: train, val, calibration, test
    before = {s: _sha(p) for s, p in paths.items()}
    paths["val"].unlink()  # an interrupted import: a rerun writes the missing file, identical
    datasets.import_splits("pdebench", src, out, seed=3)
    assert {s: _sha(p) for s, p in paths.items()} == before
    with pytest.raises(datasets.DatasetError, match="other data than this import"):
        datasets.import_splits("pdebench", src, out, seed=4)
    with pytest.raises(solvers.InputError, match="need 21 samples but .* holds 20"):
        datasets.import_splits("pdebench", src, tmp_path / "o2", splits={"train": 20, "test": 1})


def test_byai_import_cli(tmp_path, capsys):
    from experiments._cli import main

    src = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    _darcy(src, n=8)
    out = tmp_path / "data"
    assert main(["import", "pdebench", str(src), "--out", str(out), "--splits", "train=5,calibration=1,test=2",
                 "--seed", "1", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.h5")) == ["calibration.h5", "test.h5", "train.h5"]
    ds = datasets.open(out / "test.h5")
    assert ds.attrs["problem"] == "steady_map" and ds["u"].shape[0] == 2
    ds.close()
    capsys.readouterr()
    assert main(["import", "pdebench", str(src), "--out", str(tmp_path / "o"), "--splits", "train=9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("byai import: error: splits:") and "need 9 samples" in err and "\n" not in err
    assert main(["import", "pdebench", str(src), "--out", str(tmp_path / "o"), "--param", "source"]) == 2
    assert "--param 'source': expected KEY=VALUE" in capsys.readouterr().err
    assert main(["import", "the_well", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "not a The Well file" in capsys.readouterr().err
