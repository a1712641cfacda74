"""Every output verified before it is trusted: files damaged on disk, NaN in the data, damaged generation
journals, config values that slip through, and requests that cannot fit.

Each test damages the data the way a user's fault report describes and checks for one ``ByaiError``
sentence that names the file (and the sample or part), that what was intact stays intact, and, for
generation, that a rerun resumes to the bytes of an undamaged run.
"""

import hashlib
import math
import re
import shutil
import tomllib

import h5py
import numpy as np
import pytest

import datasets
import solvers
from datasets import _generate
from experiments._toml import ConfigError, from_dict

from tests.datasets._gen_worker import tiny_spec

INF, NAN = math.inf, math.nan


def _write(path, samples=4, u=None):
    """A small complete 1-D Burgers file (per-sample viscosity), its checksum and statistics recorded."""
    if u is None:
        u = np.random.default_rng(0).normal(loc=1.0, scale=0.5, size=(samples, 6, 16, 1))
    datasets.write(path, u, t=np.arange(u.shape[1]) * 0.1, grid=solvers.Grid((16,)), pde="burgers",
                   params=np.linspace(0.1, 0.2, len(u))[:, None], param_names=["nu"], rtol=1e-6, atol=1e-9)
    return u


def _flip_byte(path, sample):
    """Flip one byte inside the compressed chunk of ``sample``: its fletcher32 checksum no longer matches."""
    with h5py.File(path) as f:
        info = f["u"].id.get_chunk_info(sample)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def _one_line(e: Exception, path) -> str:
    msg = str(e)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    assert isinstance(e, solvers.ByaiError)
    return msg


def _read_all_batches(loader):
    for step in range(loader.steps_per_epoch):
        loader.batch(step)


# ------------------------------------------------------------------ 1. a byte flipped inside a chunk
def test_a_flipped_byte_in_u_names_the_file_and_sample_wherever_datasets_reads_it(tmp_path):
    path = tmp_path / "train.h5"
    u = _write(path)
    _flip_byte(path, 2)
    damaged = tmp_path / "nostats.h5"  # the same damage in a file whose statistics must be computed
    shutil.copy(path, damaged)
    with h5py.File(damaged, "r+") as f:
        del f.attrs["stats_mean"], f.attrs["stats_std"]
    before = path.read_bytes()
    expected = r": sample 2 is damaged \(its chunk fails its checksum\)"

    def check(call, where=path):
        with pytest.raises(datasets.DatasetError, match=re.escape(str(where)) + expected) as e:
            call()
        _one_line(e.value, where)

    check(lambda: datasets.Loader(path, batch_size=2))  # the cache is filled at construction
    with datasets.Loader(path, batch_size=2, cache_bytes=0, shuffle=False, prefetch=0) as plain:  # reads as it goes
        check(lambda: _read_all_batches(plain))
        check(plain.verify)
    with datasets.Loader(path, batch_size=2, cache_bytes=0, prefetch=2) as prefetching:  # read by a thread
        check(lambda: list(prefetching.iterate(0, 100)))
    check(lambda: datasets.compute_stats(damaged), damaged)
    check(lambda: datasets.Loader(damaged, batch_size=2, cache_bytes=0), damaged)
    check(lambda: datasets.verified_sha256(path))
    with pytest.raises(datasets.DatasetError, match=re.escape(str(path)) + expected + ".*corrupt"):
        datasets.open(path, verify=True)
    ds = datasets.open(path)  # structure intact: opening (without verify) and the other samples still work
    np.testing.assert_array_equal(ds["u"][3].values, u[3])
    check(lambda: datasets.write(tmp_path / "copy.h5", ds))  # datasets' own lazy read of the whole of u
    ds.close()
    assert path.read_bytes() == before  # reading never changes the file


# -------------------------------------------------- 2. a value changed with consistent chunk checksums
def test_changed_data_fails_the_recorded_sha256_before_training_uses_it(tmp_path):
    path = tmp_path / "train.h5"
    _write(path)
    recorded = datasets.open(path).attrs["sha256"]
    for cache_bytes in (None, 0):  # the sha256 the loader verified is the file's
        kw = {} if cache_bytes is None else {"cache_bytes": cache_bytes}
        with datasets.Loader(path, batch_size=2, **kw) as loader:
            assert loader.sha256 == (recorded if cache_bytes is None else None)
            assert loader.verify() == recorded == loader.sha256
    assert datasets.verified_sha256(path) == recorded
    with h5py.File(path, "r+") as f:  # a valid write: fletcher32 passes, the recorded sha256 is stale
        f["u"][1, 2, 3, 0] += 1e-3
    mismatch = re.escape(str(path)) + ": checksum mismatch"
    with pytest.raises(datasets.DatasetError, match=mismatch) as e:
        datasets.Loader(path, batch_size=2)  # cached: checked while the cache is filled
    _one_line(e.value, path)
    with datasets.Loader(path, batch_size=2, cache_bytes=0) as loader:  # too big to cache: verify() before use
        with pytest.raises(datasets.DatasetError, match=mismatch):
            loader.verify()
    with pytest.raises(datasets.DatasetError, match=mismatch):
        datasets.verified_sha256(path)


# ------------------------------------------------------------------------ 3. NaN inside a data file
def test_nan_in_u_is_blamed_on_the_file_and_its_first_sample_not_on_training(tmp_path):
    path = tmp_path / "train.h5"
    u = _write(path, samples=5)
    with h5py.File(path, "r+") as f:  # NaN after writing (chunk checksums consistent)
        f["u"][3, 4, 5, 0] = np.nan
        f["u"][1, 0, 0, 0] = np.inf
    first = re.escape(str(path)) + r": sample 1 holds non-finite values \(NaN or inf\)"
    with pytest.raises(datasets.DatasetError, match=first) as e:
        datasets.Loader(path, batch_size=2)  # before the checksum mismatch: the first bad sample is named
    _one_line(e.value, path)
    with pytest.raises(datasets.DatasetError, match=first):
        datasets.verified_sha256(path)
    with datasets.Loader(path, batch_size=1, cache_bytes=0, shuffle=False) as loader:
        # reading through the epoch: windows of sample 0 are fine, the first of sample 1 is refused
        for step in range(loader.windows_per_sample):
            loader.batch(step)
        with pytest.raises(datasets.DatasetError, match=first):
            loader.batch(loader.windows_per_sample)
        with pytest.raises(datasets.DatasetError, match=first):
            loader.verify()

    # NaN that came with the data: the recorded checksum agrees with it and the statistics are NaN
    bad = u.copy()
    bad[2, 1, 7, 0] = np.nan
    path = tmp_path / "nan.h5"
    with pytest.raises(solvers.InputError, match=r"^u: sample 2 holds non-finite values .* is not written"):
        _write(path, u=bad)  # datasets.write refuses to make such a file ...
    assert list(tmp_path.glob("*nan.h5*")) == []
    _write(path, u=u)  # ... so make it the way another tool would
    with h5py.File(path, "r+") as f:
        f["u"][2] = bad[2]
        f.attrs["sha256"] = hashlib.sha256(bad.tobytes()).hexdigest()
        f.attrs["stats_mean"] = [np.nan]
    second = re.escape(str(path)) + r": sample 2 holds non-finite values"
    for call in (lambda: datasets.compute_stats(path), lambda: datasets.Loader(path, batch_size=2),
                 lambda: datasets.verified_sha256(path),
                 lambda: datasets.Loader(path, batch_size=2, stats=datasets.Normalization([0.0], [1.0]))):
        with pytest.raises(datasets.DatasetError, match=second) as e:
            call()
        _one_line(e.value, path)


# -------------------------------------------------------------- 4. damaged parts of a generation journal
@pytest.fixture(scope="module")
def undamaged(tmp_path_factory):
    """The tiny config generated without interruption: the bytes a repaired run must equal."""
    return datasets.generate(tiny_spec(), tmp_path_factory.mktemp("undamaged"), quiet=True)


def _u_bytes(path):
    with h5py.File(path, "r") as f:
        return f["u"][...].tobytes(), f.attrs["sha256"]


def test_damaged_journal_parts_are_named_removed_and_redone_to_identical_bytes(undamaged, tmp_path, monkeypatch,
                                                                               capsys):
    out = tmp_path / "out"
    journal = out / ".train.h5.partial"

    def dies_before_assembly(*args):
        raise KeyboardInterrupt  # killed after every train part was written

    with monkeypatch.context() as m:
        m.setattr(_generate, "_assemble", dies_before_assembly)
        with pytest.raises(KeyboardInterrupt):
            datasets.generate(tiny_spec(batch_size=1), out, quiet=True)
    parts = {int(p.name.split("-")[1]): p for p in journal.glob("part-*")}
    assert sorted(parts) == list(range(6))
    # sample 1: u.npy truncated (was: "mmap length is greater than file size" after solving the rest)
    data = (parts[1] / "u.npy").read_bytes()
    (parts[1] / "u.npy").write_bytes(data[: len(data) - 100])
    # sample 2: NaN inside u.npy (was: a statistics error naming no file)
    u2 = np.load(parts[2] / "u.npy", mmap_mode="r+")
    u2[0, 3, 5, 0] = np.nan
    u2.flush()
    del u2
    # sample 3: one byte of u.npy flipped, its values still finite: the part's recorded sha256 catches it
    raw = bytearray((parts[3] / "u.npy").read_bytes())
    raw[-50] ^= 0x01
    (parts[3] / "u.npy").write_bytes(bytes(raw))
    # sample 4: meta.npz unreadable; sample 5: meta.npz readable but inconsistent with u.npy
    (parts[4] / "meta.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    np.savez(parts[5] / "meta.npz", error=np.zeros((1, 2)), params=np.full((1, 1), 0.3),
             redraws=np.zeros(1, dtype=np.int64))
    capsys.readouterr()

    solved = []
    real = _generate._solve_block

    def counting(spec, split, block, solver):
        solved.extend((split, i) for i in block)
        return real(spec, split, block, solver)

    monkeypatch.setattr(_generate, "_solve_block", counting)
    paths = datasets.generate(tiny_spec(batch_size=2), out, quiet=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5, lines
    for line, i, why in zip(lines, (1, 2, 3, 4, 5), ("truncated", "non-finite values in sample 2", "sha256 differs",
                                                     "meta.npz cannot be read", "error bounds are not 1 x 5")):
        assert line.startswith(f"byai generate: {parts[i]} is damaged (") and why in line, line
        assert f"its samples {i}..{i} are solved again" in line
    assert sorted(i for s, i in solved if s == "train") == [1, 2, 3, 4, 5]  # the intact part 0 was kept
    assert _u_bytes(paths["train"]) == _u_bytes(undamaged["train"])  # byte-identical, same sha256
    assert _u_bytes(paths["test"]) == _u_bytes(undamaged["test"])
    with h5py.File(paths["train"]) as f, h5py.File(undamaged["train"]) as g:
        for name in ("error_estimate", "params"):
            np.testing.assert_array_equal(f[name][...], g[name][...])
        assert f.attrs["redraw_count"] == g.attrs["redraw_count"]
    datasets.open(paths["train"], verify=True).close()
    assert not journal.exists()


def test_check_part_accepts_an_intact_part_and_names_what_is_wrong(tmp_path):
    spec = tiny_spec()
    part = tmp_path / "part-00000002-00000004"
    arrays = {"u": np.ones((2, 5, 32, 1)), "error": np.full((2, 5), 1e-9), "params": np.full((2, 1), 0.3),
              "redraws": np.zeros(2, dtype=np.int64)}
    written = _generate._write_part(tmp_path, 2, 4, arrays)
    assert written == part and _generate._check_part(spec, part, 2, 4) is None
    assert "holds float64 (2, 5, 32, 1), expected float64 (3, 5, 32, 1)" in _generate._check_part(spec, part, 2, 5)
    assert "not a folder" in _generate._check_part(spec, part / "u.npy", 2, 4)
    np.savez(part / "meta.npz", **dict(arrays, params=np.full((2, 2), 0.3)))  # a journal of older parts:
    assert "drawn parameters are not 2 x 1" in _generate._check_part(spec, part, 2, 4)  # no u_sha256 recorded
    np.savez(part / "meta.npz", **arrays)
    assert _generate._check_part(spec, part, 2, 4) is None
    raw = bytearray((part / "meta.npz").read_bytes())  # a flipped bit in the error bounds fails the zip's CRC-32
    raw[raw.index(np.float64(1e-9).tobytes()) + 3] ^= 0x01
    (part / "meta.npz").write_bytes(bytes(raw))
    assert "meta.npz cannot be read: Bad CRC-32" in _generate._check_part(spec, part, 2, 4)
    np.savez(part / "meta.npz", **dict(arrays, redraws=np.array([0, -1])))
    assert "redraw counts" in _generate._check_part(spec, part, 2, 4)
    (part / "meta.npz").unlink()
    assert "meta.npz cannot be read" in _generate._check_part(spec, part, 2, 4)
    (part / "u.npy").write_bytes(b"garbage")
    assert "u.npy cannot be read" in _generate._check_part(spec, part, 2, 4)


# ---------------------------------------------------------------- 5. config values that slip through
@pytest.mark.parametrize("build, message", [
    (lambda: datasets.ICSpec(alpha=INF), "^alpha: must be > 0 and finite, got inf$"),
    (lambda: datasets.ICSpec(tau=INF), "^tau: must be >= 0 and finite"),
    (lambda: datasets.ICSpec(tau=NAN), "^tau: must be >= 0 and finite"),
    (lambda: datasets.ICSpec(kind="grf", alpha=1000.0), "^alpha: must be small enough .* got 1000.0$"),
    (lambda: datasets.ICSpec(kind="grf", alpha=2.0, tau=1e300), "^tau: must be >= 0 and finite"),
    (lambda: datasets.ICSpec(cutoff=INF), "^cutoff: must be >= 1"),
    (lambda: datasets.ICSpec(cutoff=2.5), "^cutoff: must be >= 1"),
    (lambda: datasets.ICSpec(amplitude=NAN), "^amplitude: must be > 0 and finite"),
    (lambda: datasets.ICSpec(offset=-INF), "^offset: must be finite"),
    (lambda: datasets.ICSpec(kind="gaussian"), "^kind: must be one of"),
    (lambda: datasets.CoefficientSpec(alpha=INF), "^alpha: must be > 0 and finite, got inf$"),
    (lambda: datasets.CoefficientSpec(tau=INF), "^tau: must be >= 0 and finite"),
    (lambda: datasets.CoefficientSpec(alpha=2000.0), "^alpha: must be small enough"),
    (lambda: datasets.CoefficientSpec(low=INF), "^low: must be > 0 and finite"),
    (lambda: datasets.CoefficientSpec(high=NAN), "^high: must be > 0 and finite"),
    (lambda: datasets.SplitSizes(train=2**32 + 1), "^train: must be at most 2\\^32"),
    (lambda: datasets.SplitSizes(val=1.5), "^val: must be an integer >= 0"),
    (lambda: datasets.SplitSizes(test=NAN), "^test: must be an integer >= 0"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(INF,)), "^shape: must be"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), length=(INF,)), "^length: must be"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), n_times=INF), "^n_times: must be >= 2"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), n_times=2.5), "^n_times: must be >= 2"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), t_end=INF), "^t_end: must be > 0 and finite"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), rtol=NAN), "^rtol: must be > 0"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), seed=2**63), "^seed: must be >= 0 and < 2\\^63"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), batch_size=INF), "^batch_size: must be >= 1"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), params={"nu": INF}), "^params.nu: must be finite"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), param_ranges={"nu": (0.1, INF)}),
     "^param_ranges.nu: must be"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), dtype="float16"), "^dtype: must be one of"),
    (lambda: datasets.DatasetSpec(pde="darcy", shape=(8, 8), source=INF), "^source: must be finite"),
    (lambda: datasets.DatasetSpec(pde="burgers", shape=(32,), ic={"alpha": 1.0}), "^ic: must be a datasets.ICSpec"),
])
def test_every_number_of_the_spec_classes_is_checked_finite_and_in_range(build, message):
    with pytest.raises(solvers.InputError, match=message):  # a ByaiError and a ValueError
        build()


def test_inf_in_a_toml_config_is_refused_naming_the_key(tmp_path, capsys):
    table = tomllib.loads('pde = "burgers"\nshape = [32]\nic = { kind = "grf", alpha = inf, tau = 3.0 }\n')
    with pytest.raises(ConfigError, match=r"^data.ic.alpha: must be > 0 and finite, got inf$"):
        from_dict(datasets.DatasetSpec, table, "data")
    table = tomllib.loads('pde = "darcy"\nshape = [8, 8]\ncoefficient = { tau = inf }\n')
    with pytest.raises(ConfigError, match=r"^data.coefficient.tau: must be >= 0 and finite"):
        from_dict(datasets.DatasetSpec, table, "data")
    from experiments._cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\npde = "burgers"\nshape = [32]\nic = { kind = "grf", tau = inf }\n')
    assert main(["generate", str(cfg), "--out", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.ic.tau: must be >= 0 and finite" in err and "Traceback" not in err


def test_a_request_that_cannot_fit_is_refused_up_front_with_the_size_it_needs(tmp_path, monkeypatch):
    monkeypatch.setattr(_generate, "_solve_block", lambda *a: pytest.fail("a refused config must not solve"))
    out = tmp_path / "out"
    # 10^12 frames: one batch alone would be petabytes of memory
    with pytest.raises(solvers.InputError, match=r"one batch of solved samples in memory, 2 samples \(batch_size\) "
                                                 r"x 1000000000000 frames x 32 grid points x 1 channels x 8 bytes = "
                                                 r"465.7 TiB, but this machine has .*lower batch_size") as e:
        datasets.generate(tiny_spec(n_times=10**12), out, quiet=True)
    assert "\n" not in str(e.value)
    # 2^32 samples of 1000 frames x 4096 points: no disk holds their journal
    huge = tiny_spec(splits={"train": 2**32, "val": 0, "calibration": 0, "test": 0}, shape=(4096,), n_times=1000)
    with pytest.raises(solvers.InputError, match=r"the train split journals its /u uncompressed while it is "
                                                 r"generated, 4294967296 samples x 1000 frames x 4096 grid points x "
                                                 r"1 channels x 8 bytes \(float64\) = 125.0 PiB still to write, but "
                                                 r".* are free there"):
        datasets.generate(huge, out, quiet=True)
    assert list(out.iterdir()) == []  # nothing was written
    # the disk check counts what the journal already holds, and small configs pass
    free = shutil.disk_usage(tmp_path).free
    spec = tiny_spec(splits={"train": 6, "val": 0, "calibration": 0, "test": 0})
    _generate.check_resources(spec, out, ["train"])
    monkeypatch.setattr(_generate.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(free, free - 100, 100))
    with pytest.raises(solvers.InputError, match=r"6 samples x 5 frames x 32 grid points x 1 channels x 8 bytes "
                                                 r"\(float64\) = 7.5 KiB still to write, but 100 bytes are free"):
        _generate.check_resources(spec, out, ["train"])


# ------------------------------------------------------------------ 6. damaged or foreign files given to open
@pytest.mark.parametrize("damage", ["empty", "text", "signature only", "0.1%", "1%", "50%", "99%", "minus 1 byte"])
def test_truncated_and_foreign_files_are_refused_naming_the_file(tmp_path, damage):
    path = tmp_path / "train.h5"
    _write(path)
    data = path.read_bytes()
    cut = {"0.1%": len(data) // 1000, "1%": len(data) // 100, "50%": len(data) // 2, "99%": len(data) * 99 // 100,
           "minus 1 byte": len(data) - 1}
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("time,u\n0,1\n")
    elif damage == "signature only":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    else:
        path.write_bytes(data[:cut[damage]])
    for call in (lambda: datasets.open(path), lambda: datasets.open(path, verify=True),
                 lambda: datasets.Loader(path, batch_size=2), lambda: datasets.compute_stats(path),
                 lambda: datasets.verified_sha256(path)):
        with pytest.raises(datasets.DatasetError, match=re.escape(str(path)) + ": cannot be read as HDF5") as e:
            call()
        _one_line(e.value, path)
