"""``byai hybrid`` on small synthetic data, with stand-in surrogates (no training).

The reference frames come from a fine ETDRK4 rollout of 1-D Burgers; the
"surrogate" is that fine step plus a known perturbation, so which steps the
hybrid may take is known in advance.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import datasets
from experiments import _hybrid_cmd
from experiments._cli import main
from solvers import Burgers, Grid, rollout, stepper

DT, N_FRAMES, NU = 0.1, 9, 0.1
GRID = Grid(shape=(32,), length=(2 * np.pi,))


def _fine_step():
    fine = stepper(Burgers(GRID, nu=NU), dt=DT / 10)
    return lambda u: jax.lax.fori_loop(0, 10, lambda _, v: fine(v), u)


def _bump():
    (x,) = GRID.coordinates()
    return jnp.asarray(np.sqrt(2) * np.sin(2 * x)[:, None])  # RMS 1


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (x,) = GRID.coordinates()
    step = jax.jit(jax.vmap(lambda u: rollout(_fine_step(), u, N_FRAMES - 1)))
    rng = np.random.default_rng(0)
    t = DT * np.arange(N_FRAMES)
    for split, n in (("test", 3), ("calibration", 10)):
        a = rng.normal(size=(n, 4))
        u0 = 0.3 * (a[:, :1] * np.sin(x) + a[:, 1:2] * np.cos(x) + a[:, 2:3] * np.sin(2 * x)
                    + a[:, 3:4] * np.cos(3 * x))[..., None]
        u = np.asarray(step(jnp.asarray(u0)))
        datasets.write(root / f"{split}.h5", u, t=t, grid=GRID, pde="burgers", pde_params={"nu": NU},
                       rtol=1e-6, atol=1e-10, error_estimate=np.full(u.shape[:2], 1e-8), channel_names=["u"])
    return root


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    """Install a stand-in model loader: the fine step plus ``eps`` RMS error per step."""
    model = tmp_path / "model"
    model.mkdir()

    def install(eps):
        fine, bump = _fine_step(), _bump()
        monkeypatch.setattr(_hybrid_cmd, "load_model", lambda path: (lambda u: fine(u) + eps * bump,
                                                                     {"pde": "burgers"}, False))
        return model
    return install


def _config(tmp_path, **hybrid):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in hybrid.items())
    path = tmp_path / "exp.toml"
    path.write_text(f"[audit]\nalpha = 0.1\n\n[hybrid]\n{lines}\nrepeats = 1\n")
    return path


def _run(capsys, config, data, model, out, *extra):
    rc = main(["hybrid", str(config), "--data", str(data), "--model", str(model), "--out", str(out),
               "--quiet", *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


KEYS = {"tolerance", "error_vs_reference", "solver_steps", "surrogate_steps", "solver_seconds", "hybrid_seconds",
        "speedup_vs_solver", "within_tolerance"}


def test_good_surrogate_takes_surrogate_steps_within_tolerance(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-5)
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="conformal"), data_dir, model, out)
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    assert KEYS <= set(r)
    n = 3 * (N_FRAMES - 1)
    assert r["surrogate_steps"] == n and r["solver_steps"] == 0
    assert r["within_tolerance"] and r["error_vs_reference"] <= 1e-3
    # the carried conformal estimate (8 steps of ~1e-5) bounds the measured error
    assert r["error_vs_reference"] <= r["estimate_max"] + r["solver_error_vs_reference"] + 1e-12
    assert 0.9e-5 <= r["conformal_one_step_bound"] <= 1.1e-5
    assert r["solver_seconds"] > 0 and r["hybrid_seconds"] > 0
    assert r["speedup_vs_solver"] == pytest.approx(r["solver_seconds"] / r["hybrid_seconds"])
    assert r["cost_model"]["seconds_per_guard_call"] > 0
    assert (out / "hybrid.png").stat().st_size > 1000
    assert "within" in stdout


def test_too_poor_surrogate_ends_solver_only_and_says_so(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-2)
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="conformal"), data_dir, model, out)
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    assert r["surrogate_steps"] == 0 and r["solver_steps"] == 3 * (N_FRAMES - 1)
    assert r["rejected_by_guard"] == r["solver_steps"]
    assert r["within_tolerance"]
    assert r["error_vs_reference"] == pytest.approx(r["solver_error_vs_reference"])
    assert "too poor" in r["note"] and "too poor" in stdout


def test_budget_runs_out_then_solver_finishes(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-4)
    out = tmp_path / "out"
    # room for 3 steps of ~1e-4 (the conformal bound is a little above 1e-4 at most)
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=3.5e-4, guard="conformal"), data_dir, model, out)
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    assert r["surrogate_steps"] == 3 * 3 and r["samples_budget_exhausted"] == 3
    assert r["within_tolerance"] and "budget ran out" in r["note"]


def test_residual_guard_and_reanchoring(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-5)
    out = tmp_path / "out"
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="residual", correct_every=4), data_dir,
                      model, out)
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    # steps 4 and 8 of each sample are forced solver steps; the residual accepts the others
    assert r["solver_steps"] == 3 * 2 and r["surrogate_steps"] == 3 * 6
    assert r["within_tolerance"] and r["conformal_one_step_bound"] is None


def test_steps_beyond_the_test_file_name_the_key(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-5)
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, steps=50), data_dir, model, tmp_path / "out")
    assert rc == 2 and "hybrid.steps" in err


def _audit_report(tmp_path, data_dir, *, alpha, bound):
    """An audit folder whose report.json states ``bound`` for the calibration split at ``alpha``."""
    folder = tmp_path / "audit"
    folder.mkdir()
    sha = str(datasets.open(data_dir / "calibration.h5").attrs["sha256"])
    report = {"conformal": {"alpha": alpha, "one_step_rmse_bound": bound}, "provenance": {"calibration_sha256": sha}}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_conformal_bound_is_read_from_a_matching_audit_report(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-5)
    audit = _audit_report(tmp_path, data_dir, alpha=0.1, bound=2.5e-5)
    out = tmp_path / "out"
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="conformal"), data_dir, model, out,
                      "--audit", str(audit))
    assert rc == 0, err
    r = json.loads((out / "hybrid.json").read_text())
    assert r["conformal_one_step_bound"] == 2.5e-5 and r["alpha"] == 0.1
    assert r["surrogate_steps"] == 3 * (N_FRAMES - 1) and r["estimate_max"] == pytest.approx(8 * 2.5e-5)


def test_audit_report_of_another_alpha_is_not_used(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-5)
    audit = _audit_report(tmp_path, data_dir, alpha=0.05, bound=2.5e-5)
    out = tmp_path / "out"
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="conformal"), data_dir, model, out,
                      "--audit", str(audit))
    assert rc == 0, err
    assert 0.9e-5 <= json.loads((out / "hybrid.json").read_text())["conformal_one_step_bound"] <= 1.1e-5


def test_missing_audit_report_is_one_line_exit_2(tmp_path, capsys, data_dir, fake_model):
    model = fake_model(1e-5)
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, _config(tmp_path, tolerance=1e-3, guard="conformal"), data_dir, model,
                      tmp_path / "out", "--audit", str(tmp_path / "empty"))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "report.json" in err


def test_stage_takes_a_loaded_config(tmp_path, capsys, data_dir, fake_model):
    from experiments._config import load

    model = fake_model(1e-5)
    config = load(_config(tmp_path, tolerance=1e-3, guard="residual"))
    assert _hybrid_cmd.stage(config, data=data_dir, model=model, out=tmp_path / "out", quiet=True,
                             tolerance=5e-4) == 0
    r = json.loads((tmp_path / "out" / "hybrid.json").read_text())
    assert r["tolerance"] == 5e-4 and r["guard"] == "residual" and "within" in capsys.readouterr().out
