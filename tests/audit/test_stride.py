"""The audit and the hybrid in a surrogate's own step: ``stride = k`` (k saved frames per step) and window
steppers (models with ``input_steps > 1``)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import audit
import datasets
import solvers
import surrogates

from .conftest import DT, fine, make_split, quick_config, write_split


@pytest.fixture(scope="module")
def files(tmp_path_factory, burgers):
    """test (6 samples), calibration (19) and train (8) Burgers splits of 9 frames as byai files."""
    folder = tmp_path_factory.mktemp("stride")
    for name, n, seed in (("test", 6, 1), ("calibration", 19, 2), ("train", 8, 5)):
        write_split(folder / f"{name}.h5", make_split(burgers, n, 8, seed=seed))
    return folder


@pytest.fixture(scope="module")
def test_cal(files):
    return datasets.open(files / "test.h5"), datasets.open(files / "calibration.h5")


def _u(ds):
    return np.asarray(ds["u"].values, dtype=np.float64)


def test_stride_audit_is_in_the_steppers_own_step(burgers, test_cal):
    """A stepper over two save intervals is exact at stride 2 (compared with frames 0, 2, 4, ...) and wrong at
    stride 1; the horizon counts its steps and dt is two save intervals."""
    test, cal = test_cal
    two = fine(burgers, 2 * DT, 16)
    r = audit.run(two, test, cal, "rel_l2<=1e-6", config=quick_config(), repeats=1, stride=2)
    assert r.passed
    time = r.summary["time"]
    assert time["stride"] == 2 and time["horizon"] == 4 and time["window"] == 1
    assert time["dt"] == pytest.approx(2 * DT) and time["save_interval"] == pytest.approx(DT)
    np.testing.assert_array_equal(r.rollouts.ref, _u(test)[:, ::2])
    np.testing.assert_array_equal(r.inputs.t, test["time"].values[::2])
    assert r.predictions.shape == (6, 5, 32, 1)
    assert np.max(r.metrics["rel_l2"]) < 1e-6
    wrong = audit.run(two, test, cal, "rel_l2<=1e-6", config=quick_config(), repeats=1)
    assert not wrong.passed and wrong.summary["time"]["horizon"] == 8 and wrong.summary["time"]["stride"] == 1


def test_bad_stride_and_a_mismatched_model_step_are_refused(burgers, test_cal):
    test, cal = test_cal
    two = fine(burgers, 2 * DT, 16)
    for bad in (0, 1.5, True):
        with pytest.raises(solvers.InputError, match="^stride: must be a positive integer"):
            audit.run(two, test, cal, "rel_l2<=1", config=quick_config(), repeats=1, stride=bad)
    with pytest.raises(audit.AuditError, match="only 9 frames"):
        audit.run(two, test, cal, "rel_l2<=1", config=quick_config(), repeats=1, stride=9)
    with pytest.raises(audit.AuditError, match=r"steps 2 saved frames .* compared at stride 1; pass stride=2"):
        audit.run(two, test, cal, "rel_l2<=1", config=quick_config(), repeats=1, model_info={"stride": 2})
    with pytest.raises(audit.AuditError, match=r"model's step is dt = 0.1 but 2 save interval\(s\)"):
        audit.run(two, test, cal, "rel_l2<=1", config=quick_config(), repeats=1, stride=2,
                  model_info={"stride": 2, "dt": DT})
    steady = {"problem": "steady_map"}
    with pytest.raises(solvers.InputError, match="^stride: a steady map .* must be 1"):
        audit.run(two, test.assign_attrs(**steady), cal.assign_attrs(**steady), "rel_l2<=1", config=quick_config(),
                  repeats=1, stride=2)


def test_equal_accuracy_search_runs_the_solver_over_the_same_interval(burgers, test_cal):
    test, cal = test_cal
    seen = []

    def factory(pde, dt, method):
        seen.append(dt)
        return solvers.stepper(pde, dt, method)

    cfg = audit.AuditConfig(horizon=3, equal_accuracy=audit.EqualAccuracyConfig(
        coarsen=(1,), substeps=(1, 2, 4), methods=("etdrk4",), rtols=()))
    r = audit.run(fine(burgers, 2 * DT, 4), test, cal, "rel_l2<=1", config=cfg, repeats=1, stride=2,
                  solver_stepper_factory=factory)
    eq = r.summary["equal_accuracy"]
    assert eq["status"] == "measured" and eq["stride"] == 2 and eq["step_interval"] == pytest.approx(2 * DT)
    assert {round(dt, 12) for dt in seen} <= {round(2 * DT / s, 12) for s in (1, 2, 4)} and seen
    assert 2 * DT in seen  # one solver step over the whole surrogate step is tried
    # the solver's error is measured against frames 0, 2, 4, 6 over the same interval: 4 ETDRK4 steps per
    # surrogate step are the surrogate's own computation, so that setting has exactly its error
    assert eq["solver_setting"]["substeps"] == 4
    assert eq["solver_error"] == pytest.approx(eq["surrogate_error"], rel=1e-9)
    assert all(p["error"] < 0.05 for p in eq["points"])


def test_predictions_at_stride_k(test_cal):
    test, cal = test_cal
    u = _u(test)
    r = audit.run_predictions(u[:, ::2], test, requirement="rel_l2<=1e-9", config=quick_config(), stride=2)
    assert r.passed and r.summary["time"]["horizon"] == 4 and r.summary["time"]["dt"] == pytest.approx(2 * DT)
    wrong = audit.run_predictions(u[:, ::2], test, requirement="rel_l2<=1e-9", config=quick_config())
    assert not wrong.passed  # read at stride 1, frame n is compared with reference frame n, not 2n


def test_hybrid_pairs_a_stride_k_surrogate_with_the_solver_over_k_save_intervals(burgers, test_cal):
    test, cal = test_cal
    cfg = surrogates.HybridConfig(tolerance=1e-4, guard="conformal", steps=3, solver_substeps=16)
    result = audit.compare_hybrid(cfg, test, cal, fine(burgers, 2 * DT, 16), samples=2, repeats=1, stride=2,
                                  model_info={"stride": 2, "dt": 2 * DT})
    s = result.summary
    assert s["stride"] == 2 and s["step_interval"] == pytest.approx(2 * DT) and s["save_interval"] == pytest.approx(DT)
    assert s["steps_per_sample"] == 3 and s["surrogate_steps"] > 0
    # both runs end at frame 6 of the file: the solver over 2 save intervals per step matches the reference
    assert s["solver_error_vs_reference"] < 1e-6 and s["error_vs_reference"] < 1e-6
    np.testing.assert_allclose(result.curves.t, test["time"].values[:7:2])
    assert s["conformal_one_step_bound"] < 1e-12  # calibrated on steps of two save intervals
    with pytest.raises(audit.AuditError, match="model's step is dt = 0.1"):
        audit.compare_hybrid(cfg, test, cal, fine(burgers, 2 * DT, 16), samples=2, repeats=1, stride=2,
                             model_info={"stride": 2, "dt": DT})
    with pytest.raises(audit.AuditError, match=r"hybrid.steps: must be <= 4"):
        audit.compare_hybrid(surrogates.HybridConfig(tolerance=1e-4, guard="residual", steps=5), test, None,
                             fine(burgers, 2 * DT, 16), samples=2, repeats=1, stride=2)


# ------------------------------------------------------------------------------------------- windows
def _window(step):
    """A window stepper of two states from a one-state stepper (the newest state advanced and appended)."""
    return lambda w: jnp.concatenate([w[1:], step(w[-1])[None]])


def _extrapolating(w):
    """A window stepper that uses both states: the linear extrapolation 2 u[n] - u[n-1]."""
    return jnp.concatenate([w[1:], (2 * w[1] - w[0])[None]])


def test_window_stepper_audit_starts_from_the_window(burgers, test_cal):
    test, cal = test_cal
    r = audit.run(_window(fine(burgers, DT)), test, cal, "rel_l2<=1e-6", config=quick_config(), repeats=1,
                  window=2)
    assert r.passed and r.summary["time"]["window"] == 2 and r.summary["time"]["horizon"] == 7
    assert r.summary["time"]["t0"] == pytest.approx(DT)  # frame 0 of the rollout is the window's newest frame
    np.testing.assert_array_equal(r.rollouts.ref, _u(test)[:, 1:])
    # the one-step bound of a stepper using both states, recomputed by hand from the calibration split
    e = audit.run(_extrapolating, test, cal, "rel_l2<=10", config=quick_config(), repeats=1, window=2)
    u = _u(cal)
    rms = np.sqrt(np.mean((2 * u[:, 1:-1] - u[:, :-2] - u[:, 2:]) ** 2, axis=(2, 3)))  # frames n+1, n = 1..7
    assert e.summary["conformal"]["one_step_rmse_bound"] == pytest.approx(
        audit.conformal_bound(rms.max(axis=1), 0.1), rel=1e-12)
    pred = e.predictions
    t = _u(test)
    np.testing.assert_allclose(pred[:, 1], 2 * t[:, 1] - t[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(pred[:, 2], 2 * pred[:, 1] - t[:, 1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("guard", ["conformal", "state"])
def test_window_stepper_runs_in_the_hybrid(burgers, test_cal, guard):
    test, cal = test_cal
    cfg = surrogates.HybridConfig(tolerance=1e-4, guard=guard, solver_substeps=8)
    result = audit.compare_hybrid(cfg, test, cal, _window(fine(burgers, DT)), samples=2, repeats=1, window=2)
    s = result.summary
    assert s["window"] == 2 and s["steps_per_sample"] == 7 and s["surrogate_steps"] > 0
    assert s["error_vs_reference"] < 1e-6 and s["within_tolerance"]
    np.testing.assert_allclose(result.curves.t, test["time"].values[1:])
    # a window stepper that is wrong is refused by the guard step by step: the hybrid stays within tolerance
    bad = audit.compare_hybrid(cfg, test, cal, _extrapolating, samples=2, repeats=1, window=2)
    assert bad.summary["error_vs_reference"] <= 1e-4 and bad.summary["surrogate_steps"] == 0


def _train(files, out, *, stride=1, input_steps=1):
    mc = surrogates.ModelConfig(kind="fno", width=4, modes=(4,), depth=1, stride=stride)
    tc = surrogates.TrainConfig(steps=3, batch_size=4, warmup=0, val_every=0, checkpoint_every=0,
                                input_steps=input_steps)
    with datasets.Loader(files / "train.h5", batch_size=4, input_steps=input_steps, stride=stride) as loader:
        surrogates.train(mc, tc, loader, out, quiet=True, data_info={"dataset_sha256": loader.verify(),
                                                                    "pde": "burgers"})
    return surrogates.load_stepper(out)


def test_trained_stride2_model_audits_and_runs_in_the_hybrid(files, test_cal, tmp_path):
    test, cal = test_cal
    step, info = _train(files, tmp_path / "m", stride=2)
    assert info["stride"] == 2 and info["dt"] == pytest.approx(2 * DT)
    cfg = audit.AuditConfig(horizon=3, equal_accuracy=audit.EqualAccuracyConfig(
        coarsen=(1,), substeps=(1,), methods=("etdrk4",), rtols=()))
    r = audit.run(step, test, cal, "rel_l2<=10", config=cfg, repeats=1, stride=info["stride"], model_info=info,
                  out_dir=tmp_path / "audit")
    assert r.summary["time"]["dt"] == pytest.approx(2 * DT) and r.summary["requirement"]["horizon"] == 3
    one = np.stack([np.asarray(step(jnp.asarray(u0))) for u0 in _u(test)[:, 0]])
    np.testing.assert_allclose(r.predictions[:, 1], one, rtol=1e-5, atol=1e-6)  # a float32 model, batched or not
    with datasets.open(tmp_path / "audit" / "predictions.h5") as p:
        np.testing.assert_allclose(p["time"].values, test["time"].values[:7:2])
    result = audit.compare_hybrid(surrogates.HybridConfig(tolerance=1.0, guard="conformal", steps=3), test, cal,
                                  step, samples=2, repeats=1, model_info=info, stride=info["stride"])
    assert result.summary["stride"] == 2 and result.summary["step_interval"] == pytest.approx(2 * DT)


def test_trained_input_steps_2_model_audits_and_runs_in_the_hybrid(files, test_cal, tmp_path):
    test, cal = test_cal
    step, info = _train(files, tmp_path / "m", input_steps=2)
    assert info["input_steps"] == 2
    r = audit.run(step, test, cal, "rel_l2<=10", config=quick_config(horizon=3), repeats=1,
                  window=info["input_steps"], model_info=info)
    t = _u(test)
    one = np.stack([np.asarray(step(jnp.asarray(w)))[-1] for w in t[:, :2]])  # the model on the stacked window
    np.testing.assert_allclose(r.predictions[:, 0], t[:, 1])
    np.testing.assert_allclose(r.predictions[:, 1], one, rtol=1e-5, atol=1e-6)  # a float32 model, batched or not
    two = np.stack([np.asarray(step(jnp.asarray(np.stack([t[i, 1], one[i]]))))[-1] for i in range(len(t))])
    np.testing.assert_allclose(r.predictions[:, 2], two, rtol=1e-5, atol=1e-5)
    result = audit.compare_hybrid(surrogates.HybridConfig(tolerance=1.0, guard="conformal", steps=3), test, cal,
                                  step, samples=2, repeats=1, model_info=info, window=info["input_steps"])
    s = result.summary
    assert s["window"] == 2 and s["surrogate_steps"] + s["solver_steps"] == 2 * 3
    with pytest.raises(audit.AuditError, match=r"state is a window of the last 2 states"):  # window left out
        audit.run(step, test, cal, "rel_l2<=10", config=quick_config(horizon=3), repeats=1)


def test_cli_predictions_at_the_configs_stride(files, test_cal, tmp_path, capsys, recwarn):
    """``byai audit --predictions`` reads an external model's rollouts at ``[model] stride`` (1 when unstated).

    The predictions are the data itself, so every error is exactly 0: the report's plots stay on a linear
    axis rather than warn that nothing can be log-scaled."""
    import h5py

    from experiments._cli import main

    test, _ = test_cal
    pred = tmp_path / "p.h5"
    with h5py.File(pred, "w") as f:
        f["tensor"] = _u(test)[:, ::2, :, 0]  # PDEBench layout, every second saved frame
    head = '[audit]\nrequirement = "rel_l2<=1e-9"\n[audit.equal_accuracy]\nenabled = false\n'
    argv = ["--data", str(files), "--predictions", str(pred), "--quiet"]
    strided_cfg, plain_cfg = tmp_path / "k.toml", tmp_path / "one.toml"
    strided_cfg.write_text(head + "[model]\nstride = 2\n")
    plain_cfg.write_text(head)
    assert main(["audit", str(strided_cfg), *argv, "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "over 4 steps" in out
    report = json.loads((tmp_path / "k" / "report.json").read_text())
    assert report["time"]["stride"] == 2 and report["time"]["dt"] == pytest.approx(2 * DT)
    assert main(["audit", str(plain_cfg), *argv, "--out", str(tmp_path / "one")]) == 1  # read as every frame
    assert not [w for w in recwarn if "log-scaled" in str(w.message)]
