"""Bad inputs to the audit and the hybrid comparison: settings the grid or the file cannot honour are refused
in one line before any rollout (never quietly changed), a damaged reference file is named with its sample,
and a surrogate with non-finite predictions is an AuditError."""

import h5py
import numpy as np
import pytest

import audit
import datasets
import solvers
import surrogates
from experiments import _audit_cmd, _hybrid_cmd
from experiments._cli import main
from tests.audit.conftest import DT, fine, quick_config, write_split


@pytest.fixture(scope="module")
def data_dir(splits, tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    test, cal = splits
    write_split(d / "test.h5", test)
    write_split(d / "calibration.h5", cal)
    return d


@pytest.fixture
def model(burgers, tmp_path, monkeypatch):
    """A model folder whose stepper is the solver's own fine step (the commands' load_model is replaced)."""
    folder = tmp_path / "model"
    folder.mkdir()
    loaded = (fine(burgers, DT), {"pde": "burgers", "grid_shape": [32], "pde_params": {"nu": 0.05}}, False)
    monkeypatch.setattr(_audit_cmd, "load_model", lambda path: loaded)
    monkeypatch.setattr(_hybrid_cmd, "load_model", lambda path: loaded)
    return folder


def one_error_line(err: str, verb: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"byai {verb}: error: "), err
    return lines[0]


def counting(stepper):
    calls = []

    def step(u):
        calls.append(1)
        return stepper(u)

    return step, calls


# ------------------------------------------------------------------------------------- coarsen
def test_a_coarsening_the_grid_cannot_take_is_refused_before_any_rollout(burgers, splits):
    test, cal = splits
    step, calls = counting(fine(burgers, DT))
    config = audit.AuditConfig(equal_accuracy=audit.EqualAccuracyConfig(coarsen=(1, 64), rtols=()))
    with pytest.raises(audit.AuditError, match=r"^audit\.equal_accuracy\.coarsen: factor 64 leaves 0 points per "
                                               r"axis of the 32 grid, fewer than the 8 a coarse solve needs; "
                                               r"use factors up to 4$"):
        audit.run(step, test, cal, "rel_l2<=1", config=config, pde=burgers, repeats=1)
    assert calls == []


def test_a_steady_coarsening_must_divide_the_grid():
    with pytest.raises(audit.AuditError, match=r"factor 3 does not divide the 16x16 grid; use factors from "
                                               r"\[1, 2, 4\]"):
        audit._equal_accuracy.check_coarsen((1, 3), (16, 16), minimum=4, divides=True)
    audit._equal_accuracy.check_coarsen((1, 2, 4), (16, 16), minimum=4, divides=True)


def test_coarsen_beyond_the_grid_is_one_line_and_no_report(data_dir, model, tmp_path, capsys):
    config = tmp_path / "exp.toml"
    config.write_text('[audit]\nrequirement = "rel_l2<=1"\nhorizon = 2\n'
                      "[audit.equal_accuracy]\ncoarsen = [64]\nrepeats = 1\n")
    out = tmp_path / "o"
    assert main(["audit", str(config), "--data", str(data_dir), "--model", str(model), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err, "audit")
    assert "audit.equal_accuracy.coarsen: factor 64" in line and "use factors up to 4" in line
    assert not (out / "report.json").exists()


# ------------------------------------------------------------------------------------- samples
def test_more_hybrid_samples_than_the_test_file_holds_is_one_line(data_dir, model, tmp_path, capsys):
    config = tmp_path / "exp.toml"
    config.write_text("[hybrid]\ntolerance = 1.0\nsamples = 1000\nrepeats = 1\n")
    out = tmp_path / "o"
    assert main(["hybrid", str(config), "--data", str(data_dir), "--model", str(model), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err, "hybrid")
    assert f"samples: 1000 requested (hybrid.samples) but {data_dir / 'test.h5'} holds 6; ask for at most 6" in line
    assert not (out / "hybrid.json").exists()


def test_hybrid_samples_within_the_file_run_that_many(burgers, data_dir):
    test, cal = (datasets.open(data_dir / f"{name}.h5") for name in ("test", "calibration"))
    result = audit.compare_hybrid(surrogates.HybridConfig(tolerance=1.0, steps=2), test, cal, fine(burgers, DT),
                                  samples=6, repeats=1)
    assert result.summary["samples"] == 6
    with pytest.raises(audit.AuditError, match="samples: 7 requested"):
        audit.compare_hybrid(surrogates.HybridConfig(tolerance=1.0, steps=2), test, cal, fine(burgers, DT),
                             samples=7, repeats=1)


# -------------------------------------------------------------------------------- damaged files
def _poison(path, sample, frame):
    """Put a NaN into ``/u`` and record the checksum of the result (a file written with the NaN, e.g. by an
    older byai or another tool: its checksum holds, so only a look at the values finds it)."""
    from datasets._storage import checksum_file

    with h5py.File(path, "r+") as f:
        f["u"][sample, frame, 3, 0] = np.nan
        f.attrs["sha256"] = checksum_file(f, path)


def test_nan_in_the_test_file_names_the_file_and_sample_not_the_surrogate(splits, model, tmp_path, capsys):
    test, cal = splits
    data = tmp_path / "data"
    data.mkdir()
    write_split(data / "test.h5", test)
    write_split(data / "calibration.h5", cal)
    _poison(data / "test.h5", 4, 2)
    config = tmp_path / "exp.toml"
    config.write_text("[hybrid]\ntolerance = 1.0\nrepeats = 1\n")
    assert main(["hybrid", str(config), "--data", str(data), "--model", str(model), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys.readouterr().err, "hybrid")
    assert f"{data / 'test.h5'}: sample 4 holds non-finite values (NaN or inf) in 'u' at frame 2 (1 of 6" in line
    assert "surrogate" not in line


@pytest.mark.parametrize("split", ["test", "calibration"])
def test_nan_in_a_split_is_refused_by_the_audit_naming_the_sample(split, burgers, splits):
    test, cal = (s.copy(deep=True) for s in splits)
    bad = test if split == "test" else cal
    bad["u"].values[1, 3, 5, 0] = np.inf
    step, calls = counting(fine(burgers, DT))
    with pytest.raises(audit.AuditError, match=rf"sample 1 holds non-finite values \(NaN or inf\) in 'u' at frame 3 "
                                               rf".* the {split} split cannot serve as a reference"):
        audit.run(step, test, cal, "rel_l2<=1", config=quick_config(), repeats=1)
    assert calls == []


# ------------------------------------------------------------------------- non-finite predictions
def test_a_non_finite_one_step_bound_is_an_audit_error():
    with pytest.raises(audit.AuditError, match=r"bound_per_step .* got nan: the surrogate's predictions on the "
                                               r"calibration split are not finite"):
        audit.conformal_guard(float("nan"), 1e-3)
    with pytest.raises(audit.AuditError, match="not finite"):
        audit.conformal_guard(float("inf"), 1e-3)
    with pytest.raises(solvers.InputError, match="tolerance"):
        audit.conformal_guard(1e-4, float("inf"))


def test_a_surrogate_with_non_finite_predictions_is_an_audit_error_in_the_hybrid(data_dir):
    test, cal = (datasets.open(data_dir / f"{name}.h5") for name in ("test", "calibration"))
    with pytest.raises(audit.AuditError, match="not finite"):
        audit.compare_hybrid(surrogates.HybridConfig(tolerance=1.0, steps=2), test, cal, lambda u: u * np.nan,
                             repeats=1)
