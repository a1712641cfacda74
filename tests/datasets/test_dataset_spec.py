"""DatasetSpec validation from TOML tables, and the seeded initial-condition distributions."""

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

import datasets
from datasets._ic import draw_sample, random_field
from experiments._toml import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[2]


def _spec(**kw):
    return from_dict(datasets.DatasetSpec, dict(dict(pde="ks", shape=[32], length=[22.0]), **kw), "data")


def test_the_shipped_configs_parse():
    for name in ("quickstart.toml", "ns2d.toml"):
        table = tomllib.loads((ROOT / "experiments" / name).read_text())["data"]
        spec = from_dict(datasets.DatasetSpec, table, "data")
        assert spec.splits.train > 0 and spec.n_times >= 2


@pytest.mark.parametrize("change, message", [
    (dict(rtol=-1.0), "data.rtol: must be > 0"),
    (dict(atol=0.0), "data.atol: must be > 0"),
    (dict(n_times=1), "data.n_times"),
    (dict(shape=[32, 32, 32]), "data.shape"),
    (dict(params={"nu": 0.1}), "data.params.nu: unknown parameter for ks"),
    (dict(pde="burgers", params={"nu": 0.1}, param_ranges={"nu": [0.1, 0.2]}), "also fixed"),
    (dict(pde="burgers", param_ranges={"nu": [0.3, 0.2]}), "data.param_ranges.nu: must be"),
    (dict(ic={"cutoff": 0}), "data.ic.cutoff"),
    (dict(splits={"train": -1}), "data.splits.train"),
    (dict(forcing="kolmogorov"), "data.forcing: applies to navier_stokes"),
    (dict(dtype="float16"), "data.dtype: must be one of"),
    (dict(batch_size=0), "data.batch_size"),
    (dict(colour="red"), "data.colour: unknown key"),
])
def test_bad_values_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        _spec(**change)


def test_identity_ignores_batch_size_but_not_the_physics():
    a, b = _spec(batch_size=2), _spec(batch_size=7)
    assert a.identity("train") == b.identity("train")
    assert a.identity("train") != _spec(rtol=1e-7).identity("train")
    assert a.identity("train") != a.identity("test")


def test_fourier_field_is_band_limited_with_the_stated_energy():
    spec = _spec(ic={"kind": "fourier", "cutoff": 3, "amplitude": 2.0})
    fields = np.stack([draw_sample(spec, "train", i)[0][:, 0] for i in range(400)])
    spectrum = np.abs(np.fft.rfft(fields, axis=1))
    assert np.all(spectrum[:, 4:] < 1e-10) and np.all(spectrum[:, 0] < 1e-10)  # modes 1..3 only, zero mean
    ms = np.mean(fields**2)  # expected mean square = amplitude^2 (6 normals per sample: ~4% spread)
    assert ms == pytest.approx(4.0, rel=0.1)


def test_grf_spectrum_follows_the_stated_power_law():
    ic = datasets.ICSpec(kind="grf", cutoff=20, amplitude=1.0, alpha=3.0, tau=2.0)
    rng = np.random.default_rng(0)
    shape = (64,)
    fields = np.stack([random_field(rng.normal(size=(2, 64, 1)), shape, ic)[:, 0]
                       for _ in range(2000)])
    power = np.mean(np.abs(np.fft.rfft(fields, axis=1)) ** 2, axis=0)
    m = np.arange(1, 21)
    expected = (2.0**2 + m**2) ** (-3.0)
    ratio = power[1:21] / expected
    assert np.std(ratio) / np.mean(ratio) < 0.1  # power ~ (tau^2 + m^2)^-alpha up to one constant
    assert np.all(power[21:] < 1e-20)


def test_draws_depend_only_on_seed_split_index_attempt():
    spec = _spec(pde="burgers", shape=[32], length=None, param_ranges={"nu": [0.1, 0.2]})
    a = draw_sample(spec, "train", 5)
    draw_sample(spec, "train", 4)  # other draws in between change nothing
    b = draw_sample(spec, "train", 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert 0.1 <= a[1][0] <= 0.2
    for other in (draw_sample(spec, "test", 5), draw_sample(spec, "train", 5, attempt=1),
                  draw_sample(_spec(pde="burgers", shape=[32], length=None, param_ranges={"nu": [0.1, 0.2]},
                                    seed=1), "train", 5)):
        assert not np.allclose(other[0], a[0])


def test_default_initial_conditions_per_pde():
    gs = draw_sample(_spec(pde="gray_scott", shape=[16, 16], length=None), "train", 0)[0]
    assert gs.shape == (16, 16, 2)
    assert np.all(gs[..., 1] >= 0) and np.all(gs[..., 1] <= 0.25) and np.allclose(gs[..., 0], 1 - 2 * gs[..., 1])
    ns = draw_sample(_spec(pde="navier_stokes", shape=[16, 16], length=None), "train", 0)[0]
    assert ns.shape == (16, 16, 1) and abs(ns.mean()) < 1e-12
    with pytest.raises(ValueError, match="ic.cutoff: must be < N/2"):
        draw_sample(_spec(ic={"kind": "fourier", "cutoff": 16}), "train", 0)


def test_omitted_length_is_the_same_config_as_an_explicit_two_pi():
    a = from_dict(datasets.DatasetSpec, {"pde": "burgers", "shape": [32]}, "data")
    b = from_dict(datasets.DatasetSpec, {"pde": "burgers", "shape": [32], "length": [2 * math.pi]}, "data")
    assert a.length == (2 * math.pi,) and a.identity("train") == b.identity("train")


def test_progress_bar_only_on_a_terminal_and_not_quiet(monkeypatch):
    from datasets._generate import _progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert _progress(10, 0, "train", quiet=False) is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert _progress(10, 0, "train", quiet=True) is None
    bar = _progress(10, 3, "train", quiet=False)
    assert bar is not None and bar.total == 13 and bar.n == 3
    bar.close()
