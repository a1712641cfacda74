"""Importers on small files written here in the PDEBench and The Well layouts."""

import json

import h5py
import numpy as np
import pytest

import datasets


def _pdebench_merged_1d(path, n=3, nt=5, nx=16):
    rng = np.random.default_rng(1)
    tensor = rng.normal(size=(n, nt, nx)).astype(np.float32)
    x = (np.arange(nx) + 0.5) / nx  # cell centres on (0, 1)
    t = np.linspace(0, 2.0, nt + 1)  # PDEBench stores one time more than frames
    with h5py.File(path, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = x
        f["t-coordinate"] = t
        f.attrs["beta"] = 0.4
    return tensor, x, t


def test_pdebench_merged_1d(tmp_path):
    src, out = tmp_path / "1D_Advection_Sols_beta0.4.hdf5", tmp_path / "adv.h5"
    tensor, x, t = _pdebench_merged_1d(src)
    datasets.import_pdebench(src, out)
    ds = datasets.open(out, verify=True)
    assert ds["u"].shape == (3, 5, 16, 1) and ds["u"].dtype == np.float32
    np.testing.assert_array_equal(ds["u"].values[..., 0], tensor)
    np.testing.assert_array_equal(ds["x"].values, x)
    np.testing.assert_array_equal(ds["time"].values, t[:5])
    assert ds.attrs["tolerance_known"] == 0 and np.isnan(ds.attrs["rtol"]) and np.isnan(ds.attrs["atol"])
    assert np.all(np.isnan(ds["error_estimate"].values))
    assert ds.attrs["source"] == "PDEBench" and ds.attrs["pde"] == "unknown"
    assert json.loads(ds.attrs["source_attrs"]) == {"beta": 0.4}
    assert ds.attrs["grid_length"] == pytest.approx(1.0)
    ds.close()
    # the loader works on imported data
    loader = datasets.Loader(out, batch_size=4)
    assert loader.batch(0)["input"].shape == (4, 16, 1)


def test_pdebench_merged_2d_and_in_memory(tmp_path):
    src = tmp_path / "2D.h5"
    rng = np.random.default_rng(2)
    tensor = rng.normal(size=(2, 3, 8, 6))
    with h5py.File(src, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = np.linspace(0, 1, 8, endpoint=False)
        f["y-coordinate"] = np.linspace(0, 2, 6, endpoint=False)
        f["t-coordinate"] = np.arange(3.0)
    ds = datasets.import_pdebench(src)  # no out_path: an in-memory view with the same schema
    assert ds["u"].dims == ("sample", "time", "x", "y", "channel") and ds["u"].shape == (2, 3, 8, 6, 1)
    np.testing.assert_array_equal(ds["u"].values[..., 0], tensor)
    assert ds.attrs["tolerance_known"] == 0


def test_pdebench_per_seed_groups(tmp_path):
    src, out = tmp_path / "2D_diff-react_NA_NA.h5", tmp_path / "dr.h5"
    rng = np.random.default_rng(3)
    data = rng.normal(size=(4, 6, 8, 8, 2))
    with h5py.File(src, "w") as f:
        for s in range(4):
            g = f.create_group(f"{s:04d}")
            g["data"] = data[s]
            g["grid/x"] = np.linspace(-1, 1, 8)
            g["grid/y"] = np.linspace(-1, 1, 8)
            g["grid/t"] = np.linspace(0, 5, 6)
    datasets.import_pdebench(src, out, pde="gray_scott", pde_params={"f": 0.04})
    ds = datasets.open(out, verify=True)
    assert ds["u"].shape == (4, 6, 8, 8, 2)
    np.testing.assert_array_equal(ds["u"].values, data)
    assert ds.attrs["pde"] == "gray_scott" and ds.attrs["source_layout"] == "per-seed"
    assert ds.attrs["tolerance_known"] == 0
    ds.close()


def test_the_well_layout(tmp_path):
    src, out = tmp_path / "shear_flow.hdf5", tmp_path / "well.h5"
    rng = np.random.default_rng(4)
    n, nt, nx, ny = 2, 4, 8, 6
    tracer = rng.normal(size=(n, nt, nx, ny)).astype(np.float32)
    velocity = rng.normal(size=(n, nt, nx, ny, 2)).astype(np.float32)
    with h5py.File(src, "w") as f:
        f.attrs.update(dataset_name="shear_flow", grid_type="cartesian", n_spatial_dims=2, n_trajectories=n,
                       simulation_parameters=["Reynolds"], Reynolds=1e4)
        d = f.create_group("dimensions")
        d.attrs["spatial_dims"] = ["x", "y"]
        d["time"] = np.linspace(0, 1, nt).astype(np.float32)
        d["x"] = np.linspace(0, 1, nx, endpoint=False).astype(np.float32)
        d["y"] = np.linspace(0, 2, ny, endpoint=False).astype(np.float32)
        for name in ("x", "y"):
            d[name].attrs.update(sample_varying=False, time_varying=False)
        bc = f.create_group("boundary_conditions/x_periodic")
        bc.attrs.update(associated_dims=["x"], bc_type="periodic", sample_varying=False, time_varying=False)
        bc["mask"] = np.zeros(nx, bool)
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = ["tracer", "pressure_mean"]
        t0["tracer"] = tracer
        t0["tracer"].attrs.update(sample_varying=True, time_varying=True, dim_varying=[True, True])
        t0["pressure_mean"] = np.zeros((nt, nx, ny), np.float32)  # not sample varying: metadata only
        t0["pressure_mean"].attrs.update(sample_varying=False, time_varying=True)
        t1 = f.create_group("t1_fields")
        t1.attrs["field_names"] = ["velocity"]
        t1["velocity"] = velocity
        t1["velocity"].attrs.update(sample_varying=True, time_varying=True)
        sc = f.create_group("scalars")
        sc.attrs["field_names"] = ["Reynolds", "Schmidt"]
        sc["Reynolds"] = np.float32(1e4)
        sc["Reynolds"].attrs.update(sample_varying=False, time_varying=False)
        sc["Schmidt"] = np.array([0.1, 1.0], np.float32)
        sc["Schmidt"].attrs.update(sample_varying=True, time_varying=False)
    datasets.import_the_well(src, out)
    ds = datasets.open(out, verify=True)
    assert list(ds["channel"].values) == ["tracer", "velocity_x", "velocity_y"]
    np.testing.assert_array_equal(ds["u"].values[..., 0], tracer)
    np.testing.assert_array_equal(ds["u"].values[..., 1:], velocity)
    np.testing.assert_allclose(ds["time"].values, np.linspace(0, 1, nt), rtol=1e-6)
    np.testing.assert_allclose(ds["params"].sel(param="Schmidt").values, [0.1, 1.0], rtol=1e-6)
    assert json.loads(ds.attrs["boundary_conditions"])["x_periodic"]["bc_type"] == "periodic"
    assert json.loads(ds.attrs["source_skipped_fields"]) == ["t0_fields/pressure_mean"]
    assert json.loads(ds.attrs["source_attrs"])["scalars"]["Reynolds"] == pytest.approx(1e4)
    assert ds.attrs["tolerance_known"] == 0 and ds.attrs["source"] == "The Well"
    ds.close()


def test_foreign_files_are_refused(tmp_path):
    src = tmp_path / "x.h5"
    with h5py.File(src, "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(datasets.DatasetError, match="not a PDEBench file"):
        datasets.import_pdebench(src, tmp_path / "o.h5")
    with pytest.raises(datasets.DatasetError, match="not a The Well file"):
        datasets.import_the_well(src, tmp_path / "o.h5")
    with pytest.raises(datasets.DatasetError, match="no such"):
        datasets.import_pdebench(tmp_path / "missing.h5", tmp_path / "o.h5")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["tensor"] = np.zeros((2, 3, 4))
        f["x-coordinate"] = np.zeros(5)
        f["t-coordinate"] = np.zeros(3)
    with pytest.raises(datasets.DatasetError, match="do not match"):
        datasets.import_pdebench(bad, tmp_path / "o.h5")
