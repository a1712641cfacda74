"""The HDF5 schema: xarray/h5netcdf round trip, checksum, and every bad-file case."""

import hashlib
import json

import h5py
import numpy as np
import pytest
import xarray as xr

import datasets
import solvers


def _write(path, samples=3, dtype=None, **kw):
    grid = solvers.Grid((16, 8), (2.0, 1.0))
    rng = np.random.default_rng(0)
    u = rng.normal(size=(samples, 4, 16, 8, 2))
    t = np.linspace(0, 0.3, 4)
    err = np.abs(rng.normal(size=(samples, 4))) * 1e-7
    kw = dict(dict(pde="gray_scott", pde_params={"f": 0.04, "k": 0.06}, rtol=1e-6, atol=1e-9,
                   channel_names=["u", "v"]), **kw)
    datasets.write(path, u if dtype is None else u.astype(dtype), t=t, grid=grid, error_estimate=err, **kw)
    return u, t, err, grid


def test_xarray_h5netcdf_reads_the_file_as_it_is(tmp_path):
    path = tmp_path / "d.h5"
    u, t, err, grid = _write(path, params=np.array([[0.1], [0.2], [0.3]]), param_names=["du"])
    with xr.open_dataset(path, engine="h5netcdf") as ds:  # plain xarray, no byai code
        assert ds["u"].dims == ("sample", "time", "x", "y", "channel")
        np.testing.assert_array_equal(ds["u"].values, u)
        np.testing.assert_array_equal(ds["time"].values, t)
        np.testing.assert_array_equal(ds["x"].values, grid.coordinates()[0])
        np.testing.assert_array_equal(ds["y"].values, grid.coordinates()[1])
        assert list(ds["channel"].values) == ["u", "v"]
        np.testing.assert_array_equal(ds["error_estimate"].values, err)
        np.testing.assert_array_equal(ds["params"].sel(param="du").values, [0.1, 0.2, 0.3])
        assert ds.attrs["pde"] == "gray_scott" and ds.attrs["rtol"] == 1e-6
        assert json.loads(ds.attrs["pde_params"]) == {"f": 0.04, "k": 0.06}
    # the checksum is the SHA-256 of u's bytes in sample order
    assert datasets.open(path).attrs["sha256"] == hashlib.sha256(u.tobytes()).hexdigest()
    with h5py.File(path) as f:  # one sample per chunk, compressed, checksummed
        assert f["u"].chunks == (1, 4, 16, 8, 2) and f["u"].compression == "gzip" and f["u"].fletcher32
        assert all(len(f["u"].dims[i]) == 1 for i in range(5))  # dimension scales attached


def test_open_is_lazy_and_rebuilds_the_pde(tmp_path):
    path = tmp_path / "d.h5"
    u, *_ = _write(path)
    ds = datasets.open(path, verify=True)
    assert not ds["u"].variable._in_memory  # backed by the file, read on demand
    np.testing.assert_array_equal(ds["u"][1, 2].values, u[1, 2])
    pde, grid = datasets.pde_from_attrs(ds)
    assert isinstance(pde, solvers.GrayScott) and pde.f == 0.04 and pde.k == 0.06
    assert grid == solvers.Grid((16, 8), (2.0, 1.0))
    ds.close()


def test_per_sample_params_need_a_sample_index(tmp_path):
    path = tmp_path / "d.h5"
    _write(path, pde="burgers", pde_params={}, channel_names=None, params=np.array([[0.1], [0.2], [0.3]]),
           param_names=["nu"])
    ds = datasets.open(path)
    with pytest.raises(datasets.DatasetError, match="pass sample=i"):
        datasets.pde_from_attrs(ds)
    # grid is 2-D, Burgers 2-D has 2 channels; the PDE takes the sample's viscosity
    assert datasets.pde_from_attrs(ds, sample=2)[0].nu == 0.3
    ds.close()


def test_unknown_pde_cannot_be_rebuilt(tmp_path):
    path = tmp_path / "d.h5"
    _write(path, pde="unknown", pde_params={})
    with pytest.raises(datasets.DatasetError, match="not a byai PDE"):
        datasets.pde_from_attrs(datasets.open(path))


def test_missing_file(tmp_path):
    with pytest.raises(datasets.DatasetError, match="no such dataset file"):
        datasets.open(tmp_path / "nope.h5")


def test_truncated_file(tmp_path):
    path = tmp_path / "d.h5"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(datasets.DatasetError, match="cannot be read as HDF5|corrupt"):
        datasets.open(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "d.h5"
    path.write_text("hello")
    with pytest.raises(datasets.DatasetError, match="cannot be read as HDF5"):
        datasets.open(path)


def test_foreign_hdf5(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["tensor"] = np.zeros((2, 3, 4))
    with pytest.raises(datasets.DatasetError, match="not a byai dataset"):
        datasets.open(path)


def test_corrupt_bytes_in_u_are_caught_by_verify(tmp_path):
    path = tmp_path / "d.h5"
    _write(path)
    with h5py.File(path) as f:
        offset = f["u"].id.get_chunk_info(1).byte_offset
        size = f["u"].id.get_chunk_info(1).size
    raw = bytearray(path.read_bytes())
    for i in range(offset + size // 3, offset + size // 3 + 16):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    datasets.open(path).close()  # the structure is intact; the damage is in sample 1's data
    with pytest.raises(datasets.DatasetError, match="corrupt"):
        datasets.open(path, verify=True)


def test_checksum_mismatch(tmp_path):
    path = tmp_path / "d.h5"
    _write(path)
    with h5py.File(path, "r+") as f:  # a valid write that changes the data after the checksum
        f["u"][0, 0, 0, 0, 0] += 1.0
    datasets.open(path).close()
    with pytest.raises(datasets.DatasetError, match="checksum mismatch"):
        datasets.open(path, verify=True)


def test_incomplete_file_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    _write(path)
    with h5py.File(path, "r+") as f:
        f["complete"][1] = 0
    with pytest.raises(datasets.DatasetError, match="incomplete dataset .*first 1"):
        datasets.open(path)
    datasets.open(path, require_complete=False).close()


def test_missing_variable_and_newer_schema(tmp_path):
    path = tmp_path / "d.h5"
    _write(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(datasets.DatasetError, match="newer"):
        datasets.open(path)
    _write(path)
    with h5py.File(path, "r+") as f:
        del f["error_estimate"]
    with pytest.raises(datasets.DatasetError, match="lacks the variable /error_estimate"):
        datasets.open(path)


def test_float32_and_unknown_tolerance(tmp_path):
    path = tmp_path / "d.h5"
    u, *_ = _write(path, dtype=np.float32, rtol=float("nan"), atol=float("nan"))
    ds = datasets.open(path, verify=True)
    assert ds["u"].dtype == np.float32 and ds.attrs["tolerance_known"] == 0 and np.isnan(ds.attrs["rtol"])
    ds.close()


def test_write_validates_shapes(tmp_path):
    grid = solvers.Grid((16,))
    with pytest.raises(ValueError, match="t: expected 3 times"):
        datasets.write(tmp_path / "x.h5", np.zeros((2, 3, 16, 1)), t=np.zeros(4), grid=grid)
    with pytest.raises(ValueError, match="grid: shape"):
        datasets.write(tmp_path / "x.h5", np.zeros((2, 3, 8, 1)), t=np.zeros(3), grid=grid)
    with pytest.raises(ValueError, match="u: expected"):
        datasets.write(tmp_path / "x.h5", np.zeros((3, 16)), t=np.zeros(3), grid=grid)


def test_info_command_prints_and_fails_with_one_line(tmp_path, capsys):
    from experiments._cli import main

    path = tmp_path / "d.h5"
    _write(path)
    assert main(["info", str(path), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "gray_scott" in out and "rtol" in out and "[3, 4, 16, 8, 2]" in out and "sha256" in out
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert main(["info", str(tmp_path / "bad.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.h5" in err and "Traceback" not in err


def test_write_takes_an_xarray_dataset_and_attrs(tmp_path):
    path = tmp_path / "d.h5"
    u, t, err, grid = _write(path)
    ds = datasets.open(path)
    pred = ds.copy()
    pred["u"] = pred["u"] * 2.0
    out = datasets.write(tmp_path / "pred.h5", pred.load(), attrs={"source": "audit", "rtol": float("nan")})
    back = datasets.open(out, verify=True)
    np.testing.assert_array_equal(back["u"].values, 2 * u)
    np.testing.assert_array_equal(back["error_estimate"].values, err)
    assert back.attrs["source"] == "audit" and back.attrs["tolerance_known"] == 0
    assert back.attrs["pde"] == "gray_scott" and datasets.pde_from_attrs(back)[1] == grid
    assert back.attrs["sha256"] == hashlib.sha256((2 * u).tobytes()).hexdigest()
    # the attrs keys pde / rtol / atol act as the keyword arguments
    datasets.write(tmp_path / "k.h5", u, t=t, grid=grid, attrs=dict(pde="diffusion", pde_params={"nu": 0.5},
                                                                     rtol=1e-4, atol=1e-8))
    k = datasets.open(tmp_path / "k.h5")
    assert k.attrs["tolerance_known"] == 1 and k.attrs["rtol"] == 1e-4
    assert datasets.pde_from_attrs(k)[0].nu == 0.5
