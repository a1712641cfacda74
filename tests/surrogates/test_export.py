"""``byai export``: the serialised jax.export stepper runs without byai and matches ``surrogates.load_stepper``."""

import json
import subprocess
import sys

import numpy as np
import pytest

import surrogates
from experiments._cli import main as byai

from tests.surrogates.test_train import CONFIG, data, reference  # noqa: F401  (module fixtures: heat data, a trained model)

RUN_WITHOUT_BYAI = """
import sys, numpy as np, jax
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
u = np.load(sys.argv[2])
out = np.stack([np.asarray(exported.call(x)) for x in u])
np.save(sys.argv[3], out)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("solvers", "datasets", "surrogates", "audit",
                                                         "experiments", "flax", "optax")))
"""


def test_exported_stepper_runs_without_byai_and_matches_load_stepper(reference, tmp_path, capsys):  # noqa: F811
    _, model_dir = reference
    out = tmp_path / "heat.jaxexport"
    assert byai(["export", str(model_dir), "--out", str(out)]) == 0
    assert "exported step(u) on float32 (32, 1)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "heat.jaxexport.json").read_text())
    assert meta["format"] == "byai.stepper.jax_export" and meta["input"]["u"] == {"shape": [32, 1], "dtype": "float32"}

    rng = np.random.default_rng(0)
    u = rng.standard_normal((4, 32, 1)).astype(np.float32)
    np.save(tmp_path / "u.npy", u)
    r = subprocess.run([sys.executable, "-c", RUN_WITHOUT_BYAI, str(out), str(tmp_path / "u.npy"),
                        str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"  # neither byai nor flax/optax was imported to run it
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == u.shape

    step, _ = surrogates.load_stepper(model_dir)
    ref = np.stack([np.asarray(step(x.astype(np.float64))) for x in u])
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(y - ref)) <= 1e-6 * scale, np.max(np.abs(y - ref)) / scale
    # and it is not a trivial map: the step changes the state
    assert np.max(np.abs(y - u)) > 1e-3 * scale


def test_export_refuses_what_is_not_a_model(tmp_path, capsys):
    rc = byai(["export", str(tmp_path), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("byai export: error:"), err
    with pytest.raises(surrogates.CheckpointError):
        surrogates.export_stepper(tmp_path)


def test_a_window_model_exports_its_window_stepper(data, tmp_path, capsys):  # noqa: F811
    """A model of two input frames exports ``step(w)`` on the window ``(2, *grid, C)``, equal to ``load_stepper``'s."""
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.format(extra="input_steps = 2"))
    model_dir = tmp_path / "m"
    assert byai(["train", str(config), "--data", str(data), "--out", str(model_dir), "--quiet"]) == 0
    out = tmp_path / "w.jaxexport"
    assert byai(["export", str(model_dir), "--out", str(out)]) == 0
    assert "exported step(w) on float32 (2, 32, 1), a window of the last 2 states" in capsys.readouterr().out
    meta = json.loads((tmp_path / "w.jaxexport.json").read_text())
    assert meta["window"] == 2 and meta["stride"] == 1 and meta["input"]["u"]["shape"] == [2, 32, 1]

    import jax

    exported = jax.export.deserialize(out.read_bytes())
    w = np.random.default_rng(1).standard_normal((2, 32, 1)).astype(np.float32)
    y = np.asarray(exported.call(w))
    step, _ = surrogates.load_stepper(model_dir)
    ref = np.asarray(step(w.astype(np.float64)))
    assert y.shape == (2, 32, 1)
    np.testing.assert_array_equal(y[0], w[1])  # the window moves on by one state
    assert np.max(np.abs(y - ref)) <= 1e-6 * np.max(np.abs(ref))
