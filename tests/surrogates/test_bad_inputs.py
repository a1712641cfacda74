"""Bad inputs to training and loading: damaged checkpoints (audit, hybrid, resume), non-finite settings,
grids a model cannot take, the divergence message and the loss a finished run reports."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import solvers
import surrogates
from experiments._cli import main as byai
from experiments._toml import ConfigError, from_dict

from tests.audit.conftest import make_split, write_split
from tests.surrogates._heat import write_heat
from tests.surrogates.test_train import curve, write_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Heat-equation train/val splits, and Burgers test/calibration splits for the audit and hybrid commands
    (the checkpoint is refused before the data is compared with the model)."""
    folder = write_heat(tmp_path_factory.mktemp("heat"), train=16, val=4, n_times=4, n=32)
    pde = solvers.Burgers(solvers.Grid((32,)), nu=0.05)
    write_split(folder / "test.h5", make_split(pde, 3, 4, seed=1))
    write_split(folder / "calibration.h5", make_split(pde, 9, 4, seed=2))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """12 steps, checkpoints and validation at 6 and 12."""
    tmp = tmp_path_factory.mktemp("trained")
    config = write_config(tmp / "c.toml", '\n[hybrid]\ntolerance = 1.0\n[audit]\nrequirement = "rel_l2<=10"\n')
    assert byai(["train", str(config), "--data", str(data), "--out", str(tmp / "m"), "--quiet"]) == 0
    return config, tmp / "m"


def damage(folder: Path, how: str) -> None:
    """Truncate every file of a checkpoint's arrays to half, or overwrite the first bytes of each."""
    files = sorted(p for p in (folder / "state").rglob("*") if p.is_file())
    assert files, folder
    for f in files:
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2] if how == "truncate" else bytes(b ^ 0x5A for b in data[:64]) + data[64:])


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def one_error_line(err: str, verb: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"byai {verb}: error: "), err
    return lines[0]


# ------------------------------------------------------------------------------ damaged checkpoints
@pytest.mark.parametrize("how", ["truncate", "overwrite"])
def test_audit_and_hybrid_refuse_a_damaged_checkpoint_in_one_line(how, trained, data, tmp_path, capsys):
    config, model = trained
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    (best,) = (copy / "best").iterdir()
    damage(best, how)
    before = tree_hash(copy)
    for verb in ("audit", "hybrid"):
        out = tmp_path / verb
        assert byai([verb, str(config), "--data", str(data), "--model", str(copy), "--out", str(out), "--quiet"]) == 2
        line = one_error_line(capsys.readouterr().err, verb)
        assert f"checkpoint {best} cannot be read" in line and "corrupted" in line
        assert not out.exists() or not any(out.iterdir())
    assert tree_hash(copy) == before  # refusing reads nothing into the folder
    with pytest.raises(surrogates.CheckpointError, match="cannot be read"):
        surrogates.load(copy)


def test_a_damaged_checkpoint_is_one_line_for_a_whole_process(trained, data, tmp_path):
    """orbax's abandoned reads report themselves when collected, at exit at the latest: not one of them shows."""
    config, model = trained
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    damage(next((copy / "best").iterdir()), "truncate")
    proc = subprocess.run([sys.executable, "-m", "experiments", "audit", str(config), "--data", str(data),
                           "--model", str(copy), "--out", str(tmp_path / "a"), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "cannot be read" in one_error_line(proc.stderr, "audit")


def test_resume_continues_from_the_newest_readable_checkpoint(trained, data, tmp_path, capsys):
    config, model = trained
    out = tmp_path / "m"
    shutil.copytree(model, out)
    damage(out / "checkpoints" / "12", "truncate")
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {out.absolute() / 'checkpoints' / '12'} cannot be read" in err
    assert "resuming from step 6" in err
    np.testing.assert_allclose(curve(out), curve(model), rtol=1e-6)  # the uninterrupted run's curve
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["12", "6"]
    (best,) = (model / "best").iterdir()
    later_best = [f"best-{best.name}"] if int(best.name) > 6 else []  # measured again, so set aside too
    assert sorted(p.name for p in (out / "set_aside").iterdir()) == sorted(["checkpoints-12", *later_best])
    assert [p.name for p in (out / "best").iterdir()] == [best.name]
    assert surrogates.load(out)[2]["step"] == int(best.name)
    assert surrogates.load(out, best=False)[2]["step"] == 12


def test_resume_before_the_first_checkpoint_sets_aside_a_best_one(trained, data, tmp_path, capsys):
    """A run stopped (a full disk, a kill) after a best save but before its first latest checkpoint resumes
    from step 0 and measures that best step again: orbax would refuse to write it a second time."""
    config, model = trained
    out = tmp_path / "m"
    shutil.copytree(model, out)
    shutil.rmtree(out / "checkpoints")
    (best,) = (model / "best").iterdir()
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    assert f"best checkpoint {best.name} is after step 0" in capsys.readouterr().err
    assert [p.name for p in (out / "set_aside").iterdir()] == [f"best-{best.name}"]
    np.testing.assert_allclose(curve(out), curve(model), rtol=1e-6)  # the uninterrupted run's curve
    assert surrogates.load(out)[2]["step"] == int(best.name)


def test_resume_with_no_readable_checkpoint_names_them_and_changes_nothing(trained, data, tmp_path, capsys):
    config, model = trained
    out = tmp_path / "m"
    shutil.copytree(model, out)
    for step in ("6", "12"):
        damage(out / "checkpoints" / step, "overwrite")
    before = tree_hash(out)
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "no checkpoint" in line and "nothing to resume from" in line
    assert f"{out.absolute() / 'checkpoints' / '12'} cannot be read" in line
    assert f"{out.absolute() / 'checkpoints' / '6'} cannot be read" in line
    assert tree_hash(out) == before and not (out / "set_aside").exists()


def test_resuming_a_finished_run_reports_its_last_loss(trained, data, tmp_path, capsys):
    config, model = trained
    out = tmp_path / "m"
    shutil.copytree(model, out)
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"step 12, loss {last:.4g}" in err and "nan" not in err
    (out / "metrics.jsonl").unlink()  # without the log, the checkpoint's own record of it
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    assert f"step 12, loss {last:.4g}" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("cls, section, key, value", [
    (surrogates.ModelConfig, "model", "channel_mlp_expansion", float("inf")),
    (surrogates.ModelConfig, "model", "channel_mlp_expansion", float("nan")),
    (surrogates.TrainConfig, "train", "lr", float("inf")),
    (surrogates.TrainConfig, "train", "lr", float("nan")),
    (surrogates.TrainConfig, "train", "weight_decay", float("inf")),
    (surrogates.TrainConfig, "train", "clip", float("inf")),
    (surrogates.TrainConfig, "train", "final_lr_fraction", float("nan")),
])
def test_non_finite_settings_are_refused_naming_the_key(cls, section, key, value):
    with pytest.raises(ConfigError, match=rf"^{section}\.{key}: must be a finite number, got {value}$"):
        from_dict(cls, {key: value}, section)


@pytest.mark.parametrize("section, table, key", [
    ("hybrid", {"tolerance": float("inf")}, "hybrid.tolerance"),
    ("hybrid", {"tolerance": 1.0, "growth": float("nan")}, "hybrid.growth"),
    ("hybrid", {"tolerance": 1.0, "growth": float("inf")}, "hybrid.growth"),
    ("audit", {"alpha": float("nan")}, "audit.alpha"),
    ("audit", {"quantile": float("inf")}, "audit.quantile"),
    ("audit", {"correlation_threshold": float("nan")}, "audit.correlation_threshold"),
    ("audit", {"requirement": "rel_l2<=inf"}, "audit.requirement"),
    ("audit", {"equal_accuracy": {"rtols": [float("nan")]}}, "audit.equal_accuracy.rtols"),
])
def test_non_finite_hybrid_and_audit_settings_are_refused_naming_the_key(section, table, key):
    import audit

    cls = {"hybrid": surrogates.HybridConfig, "audit": audit.AuditConfig}[section]
    with pytest.raises(ConfigError, match=rf"^{key}"):
        from_dict(cls, table, section)


def test_infinite_setting_is_one_line_before_anything_is_written(data, tmp_path, capsys):
    config = write_config(tmp_path / "c.toml")
    config.write_text(config.read_text().replace("depth = 1", "depth = 1\nchannel_mlp_expansion = inf"))
    out = tmp_path / "m"
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--quiet"]) == 2
    assert "model.channel_mlp_expansion: must be a finite number, got inf" in one_error_line(
        capsys.readouterr().err, "train")
    assert not out.exists()


@pytest.mark.parametrize("checkpoint_every", [1, 0])
def test_divergence_names_the_last_good_checkpoint_or_says_there_is_none(checkpoint_every, data, tmp_path,
                                                                         capsys):
    text = write_config(tmp_path / "c.toml").read_text().replace("lr = 3e-3", "lr = 1e30")
    text = text.replace("warmup = 2", "warmup = 0\nclip = 0.0").replace("val_every = 6", "val_every = 0")
    (tmp_path / "c.toml").write_text(text.replace("checkpoint_every = 6", f"checkpoint_every = {checkpoint_every}"))
    out = tmp_path / "m"
    assert byai(["train", str(tmp_path / "c.toml"), "--data", str(data), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    bad = int(line.split("at step ")[1].split(";")[0])
    assert "is none" not in line and "train.lr" in line
    if checkpoint_every:
        assert f"training stopped; the last good checkpoint is step {bad - 1} in {out / 'checkpoints'} (" in line
    else:
        assert "training stopped before any checkpoint was written (" in line
        assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


# --------------------------------------------------------------------------------------- grids
@pytest.mark.parametrize("model, key, expected", [
    ('kind = "fno"\nwidth = 8\nmodes = [1000]', "model.modes",
     "1000 Fourier modes on an axis of 32 points, which resolves at most 32 (wavenumbers -16..15); use modes <= 32"),
    ('kind = "fno"\nwidth = 8\nmodes = [40]\npadding = 4', "model.modes",
     "40 Fourier modes on an axis of 36 points (32 + padding 4)"),
    ('kind = "unet"\nwidth = 8\ngroups = 4\nmultipliers = [1, 1, 1, 1, 1, 1, 1]', "model.multipliers",
     "7 levels halve the grid 6 times, so each axis needs a multiple of 64 points, but the grid is (32,); "
     "use at most 6 levels"),
])
def test_a_model_the_grid_cannot_feed_is_refused_before_it_is_built(model, key, expected, data, tmp_path, capsys):
    config = write_config(tmp_path / "c.toml")
    text = config.read_text().replace('kind = "fno"\nwidth = 8\nmodes = [8]', model)
    config.write_text(text)
    out = tmp_path / "m"
    assert byai(["train", str(config), "--data", str(data), "--out", str(out), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert f"{key}: {expected}" in line
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    surrogates._config.check_grid(surrogates.ModelConfig(modes=(32,)), (32,))  # the limit itself is allowed
