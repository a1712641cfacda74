"""``byai crossover`` end to end: a tiny Burgers config generated and trained for a few steps, measured at three
grid sizes; a rerun reuses the generated reference data; bad input is one line and exit 2."""

import json

import pytest

from audit import find_crossing, fit_power_law
from experiments._cli import main

TINY = """
[data]
pde = "burgers"
params = { nu = 0.2 }
shape = [32]
t_end = 0.4
n_times = 5
rtol = 1e-5
ic = { kind = "fourier", cutoff = 2, amplitude = 0.3 }
splits = { train = 8, val = 2, calibration = 0, test = 3 }
batch_size = 8

[model]
kind = "fno"
width = 8
modes = [8]
depth = 1

[train]
steps = 10
batch_size = 8
warmup = 2
val_every = 10
checkpoint_every = 10

[audit]
requirement = "rel_l2<=10"
horizon = 2
equal_accuracy = { coarsen = [1], substeps = [1, 2], methods = ["etdrk1"], rtols = [], repeats = 1 }

[crossover]
shapes = [16, 32, 64]
samples = 2
"""

ROW_KEYS = {"grid", "stride", "surrogate_error", "surrogate_seconds", "solver_setting", "solver_seconds", "speedup"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crossover_cli")
    config = folder / "tiny.toml"
    config.write_text(TINY)
    assert main(["generate", str(config), "--out", str(folder / "data"), "--quiet"]) == 0
    assert main(["train", str(config), "--data", str(folder / "data"), "--out", str(folder / "model"),
                 "--quiet"]) == 0
    return config, folder


def _crossover(config, folder, out, *extra):
    return main(["crossover", str(config), "--data", str(folder / "data"), "--model", str(folder / "model"),
                 "--out", str(out), "--quiet", *extra])


@pytest.mark.slow  # ~40 s for the fixture and ~45 s here on 2 cores under load (mostly compiling the solver per grid)
def test_crossover_end_to_end_then_rerun(trained, tmp_path, capsys, monkeypatch):
    config, folder = trained
    out = tmp_path / "cross"
    capsys.readouterr()
    assert _crossover(config, folder, out, "--shapes", "32,64,128") == 0
    printed = capsys.readouterr().out
    assert ("crosses 1" in printed) or ("no crossing" in printed)
    assert (out / "crossover.png").read_bytes()[:4] == b"\x89PNG"
    s = json.loads((out / "crossover.json").read_text())
    assert {"rows", "series", "scaling", "crossing"} <= set(s)
    rows = s["rows"]
    assert [r["grid"] for r in rows] == [32, 64, 128]  # --shapes overrides the config's
    for r in rows:
        assert ROW_KEYS <= set(r) and r["status"] == "measured" and r["stride"] == 1
        assert r["speedup"] == pytest.approx(r["solver_seconds"] / r["surrogate_seconds"])
    # the crossing and the fits are those of the rows written
    points = [r["points"] for r in rows]
    sur = fit_power_law(points, [r["surrogate_seconds"] for r in rows])
    sol = fit_power_law(points, [r["solver_seconds"] for r in rows])
    assert s["scaling"]["surrogate"]["p"] == pytest.approx(sur.p)
    assert s["scaling"]["solver"]["p"] == pytest.approx(sol.p)
    expected = find_crossing([r["grid"] for r in rows], 1, [r["speedup"] for r in rows], sur, sol).to_json()
    got = s["crossing"]
    assert set(got) == set(expected) | {"model", "stride"} and got["model"] == str(folder / "model")
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    # the data's own size (32) reuses DIR/test.h5; the others are generated into OUT/data
    assert sorted(p.name for p in (out / "data").iterdir()) == ["128-s2", "64-s2"]

    # a rerun reuses the generated reference sets: nothing is solved again
    def no_solving(*args, **kwargs):
        raise AssertionError("a cached reference set was regenerated")

    monkeypatch.setattr("datasets._generate._generate_range", no_solving)
    before = {p: p.stat().st_mtime_ns for p in (out / "data").rglob("test.h5")}
    assert _crossover(config, folder, out, "--shapes", "32,64,128") == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "data").rglob("test.h5")} == before
    assert [r["grid"] for r in json.loads((out / "crossover.json").read_text())["rows"]] == [32, 64, 128]


@pytest.mark.slow
def test_crossover_bad_input(trained, tmp_path, capsys):
    config, folder = trained
    cases = [(["--shapes", "32"], "--shapes: must hold at least two distinct grid sizes"),
             (["--shapes", "32,x"], "--shapes: expected comma-separated grid sizes"),
             (["--samples", "0"], "--samples: must be an integer >= 1")]
    for extra, message in cases:
        capsys.readouterr()
        assert _crossover(config, folder, tmp_path / "bad", *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("byai crossover: error: ") and message in err[0], err
    capsys.readouterr()
    assert main(["crossover", str(config), "--data", str(folder / "data"), "--model", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "--model" in capsys.readouterr().err
    other = tmp_path / "ks.toml"
    other.write_text(TINY.replace('pde = "burgers"', 'pde = "ks"').replace("params = { nu = 0.2 }", ""))
    assert main(["crossover", str(other), "--data", str(folder / "data"), "--model", str(folder / "model"),
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "pde" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "crossover.json").exists()
