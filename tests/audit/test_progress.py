"""Progress bars of the audit, the equal-accuracy search and the hybrid: on a terminal only, never when quiet,
and without any effect on the results."""

import io
import re
import sys

import numpy as np
import pytest

import audit
import datasets
import surrogates
from audit import _equal_accuracy, _progress
from tests.audit.conftest import DT, fine, write_split

# the settings the search may try: substeps 1, 2, 4 (it stops at 4, the "surrogate's" own setting)
CONFIG = audit.AuditConfig(equal_accuracy=audit.EqualAccuracyConfig(coarsen=(1,), substeps=(1, 2, 4, 8),
                                                                    methods=("etdrk4",), rtols=()))


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def _bars(text: str, desc: str) -> list[str]:
    """tqdm's renderings of the bar ``desc`` (``desc:  50%|...| 2/4 [...]``) in ``text``."""
    return re.findall(rf"{re.escape(desc)}:\s+\d+%\|[^\r\n]*\d+/\d+ \[", text)


def _audit(burgers, splits, monkeypatch, stream, *, quiet):
    test, cal = splits
    monkeypatch.setattr(sys, "stderr", stream)
    report = audit.run(fine(burgers, DT, 4), test, cal, "rel_l2<=1", config=CONFIG, pde=burgers, repeats=1,
                       quiet=quiet)
    monkeypatch.undo()
    return report, stream.getvalue()


@pytest.fixture(scope="module")
def runs(burgers, splits):
    """The same audit on a terminal, quiet on a terminal, and not quiet on a plain stream."""
    out = {}
    for name, stream, quiet in (("terminal", Terminal(), False), ("quiet", Terminal(), True),
                                ("pipe", io.StringIO(), False)):
        with pytest.MonkeyPatch.context() as mp:
            out[name] = _audit(burgers, splits, mp, stream, quiet=quiet)
    return out


def test_bars_on_a_terminal(runs):
    _, err = runs["terminal"]
    assert _bars(err, "rollouts") and _bars(err, "equal-accuracy search")
    # the message lines are still there, written above the bars
    assert "byai audit: rolling out 6 test and 19 calibration samples over 8 steps" in err
    assert "byai audit: equal-accuracy search over solver settings" in err
    assert re.search(r"substeps': 4.*error", err)


def test_no_bars_when_quiet_or_not_a_terminal(runs):
    _, quiet = runs["quiet"]
    _, pipe = runs["pipe"]
    for err in (quiet, pipe):
        assert not _bars(err, "rollouts") and not _bars(err, "equal-accuracy search")
        assert "%|" not in err and "\r" not in err
    assert "byai audit:" not in quiet
    assert "byai audit: rolling out" in pipe  # the messages alone


def _untimed(summary: dict) -> dict:
    """``report.json`` without what depends on wall times (seconds, speedups, the cheapest setting chosen)."""
    timed = {"cost", "solver_setting", "solver_error", "note"}

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in timed and "second" not in k and "speedup" not in k}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return strip(summary)


def test_the_report_is_the_same_with_and_without_bars(runs):
    reports = [runs[name][0] for name in ("terminal", "quiet", "pipe")]
    for r in reports[1:]:
        assert np.array_equal(r.predictions, reports[0].predictions)
        assert _untimed(r.summary) == _untimed(reports[0].summary)
    points = reports[0].summary["equal_accuracy"]["points"]
    assert [p["setting"]["substeps"] for p in points] == [1, 2, 4]  # the search stopped early


class _Recorder:
    """A stand-in for :func:`audit._progress.bar` that records totals, ticks and closing."""

    def __init__(self):
        self.bars = []

    def __call__(self, total, desc, quiet, **kw):
        rec = self

        class Bar:
            def __enter__(self):
                rec.bars.append({"total": total, "desc": desc, "quiet": quiet, "ticks": 0, "closed": False})
                return self

            def update(self, n=1):
                rec.bars[-1]["ticks"] += n

            def __exit__(self, *exc):
                rec.bars[-1]["closed"] = True

        return Bar()


def test_search_ticks_once_per_setting_and_closes_when_it_stops_early(burgers, splits, monkeypatch):
    test, _ = splits
    ref = test["u"].values[:2, :4]
    recorder = _Recorder()
    monkeypatch.setattr(_equal_accuracy, "bar", recorder)
    target = float(np.max(np.abs(np.asarray(_equal_accuracy.solver_rollout(
        burgers, burgers.grid, _equal_accuracy.Setting(1, 2, "etdrk4"), DT, 3)(burgers, ref[:, 0])) - ref)))
    res = _equal_accuracy.search(burgers, burgers.grid, ref[:, 0], DT, 3,
                                 lambda traj: float(np.max(np.abs(traj - ref))), target, CONFIG.equal_accuracy,
                                 repeats=1, quiet=False)
    assert len(res["points"]) == 2  # substeps 1, then 2 matches
    assert recorder.bars == [{"total": 4, "desc": "equal-accuracy search", "quiet": False, "ticks": 2,
                              "closed": True}]


def test_time_call_ticks_outside_the_timings():
    ticks = []
    seconds, out = _equal_accuracy.time_call(lambda x: x + 1, 1, repeats=3, tick=lambda: ticks.append(1))
    assert out == 2 and seconds >= 0
    assert len(ticks) == _equal_accuracy.time_call_ticks(3) == 5


def test_bar_is_disabled_unless_a_terminal(monkeypatch):
    for stream, quiet, shown in ((Terminal(), False, True), (Terminal(), True, False), (io.StringIO(), False, False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with _progress.bar(3, "work", quiet) as b:
            b.update()
            _progress.echo("a message")
        monkeypatch.undo()
        assert bool(_bars(stream.getvalue(), "work")) is shown
        assert "a message\n" in stream.getvalue()


@pytest.fixture(scope="module")
def test_file(splits, tmp_path_factory):
    """The test split as a byai file (the hybrid rebuilds each sample's PDE from its attributes)."""
    return datasets.open(write_split(tmp_path_factory.mktemp("progress") / "test.h5", splits[0]))


@pytest.mark.parametrize("quiet", [False, True])
def test_hybrid_bars(burgers, test_file, monkeypatch, quiet):
    test = test_file
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    audit.compare_hybrid(surrogates.HybridConfig(tolerance=1e-3, guard="residual", steps=3), test, None,
                         fine(burgers, DT, 4), samples=2, repeats=1, log=_progress.echo, quiet=quiet)
    monkeypatch.undo()
    err = stream.getvalue()
    assert "solver alone: 2 samples x 3 steps" in err  # the messages either way
    assert bool(_bars(err, "solver alone")) is not quiet and bool(_bars(err, "hybrid")) is not quiet


# ------------------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def data_dir(splits, tmp_path_factory):
    d = tmp_path_factory.mktemp("progress_data")
    write_split(d / "test.h5", splits[0])
    write_split(d / "calibration.h5", splits[1])
    return d


def _main(monkeypatch, argv):
    """``byai ARGV`` with a terminal as stderr: its exit status and what it wrote there."""
    from experiments._cli import main

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    rc = main(argv)
    monkeypatch.undo()
    return rc, stream.getvalue()


@pytest.mark.parametrize("quiet", [False, True])
def test_byai_audit_quiet_reaches_the_bars(burgers, data_dir, tmp_path, monkeypatch, quiet):
    from experiments import _audit_cmd

    config = tmp_path / "exp.toml"
    config.write_text('[audit]\nrequirement = "rel_l2<=10"\nhorizon = 4\n'
                      '[audit.equal_accuracy]\nenabled = false\nrepeats = 1\n')
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(_audit_cmd, "load_model", lambda path: (fine(burgers, DT, 4), {"pde": "burgers"}, False))
    rc, err = _main(monkeypatch, ["audit", str(config), "--data", str(data_dir), "--model", str(tmp_path / "model"),
                                  "--out", str(tmp_path / "out")] + (["--quiet"] if quiet else []))
    assert rc == 0, err
    assert bool(_bars(err, "rollouts")) is not quiet


@pytest.mark.parametrize("quiet", [False, True])
def test_byai_hybrid_quiet_reaches_the_bars(burgers, data_dir, tmp_path, monkeypatch, quiet):
    from experiments import _hybrid_cmd

    config = tmp_path / "exp.toml"
    config.write_text('[hybrid]\ntolerance = 1e-3\nguard = "residual"\nsteps = 2\nsamples = 2\nrepeats = 1\n')
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(_hybrid_cmd, "load_model", lambda path: (fine(burgers, DT, 4), {"pde": "burgers"}, False))
    rc, err = _main(monkeypatch, ["hybrid", str(config), "--data", str(data_dir), "--model", str(tmp_path / "model"),
                                  "--out", str(tmp_path / "out")] + (["--quiet"] if quiet else []))
    assert rc == 0, err
    assert bool(_bars(err, "solver alone")) is not quiet and bool(_bars(err, "hybrid")) is not quiet
    assert ("solver alone: 2 samples x 2 steps" in err) is not quiet


@pytest.mark.parametrize("quiet", [False, True])
def test_byai_crossover_passes_quiet_on(tmp_path, monkeypatch, quiet):
    """The study itself is tested in tests/experiments/test_crossover.py; here only what ``--quiet`` hands it."""
    from experiments import _crossover_cmd

    config = tmp_path / "exp.toml"
    config.write_text('[data]\npde = "burgers"\nparams = { nu = 0.2 }\nshape = [32]\nt_end = 0.4\nn_times = 5\n'
                      'rtol = 1e-5\nic = { kind = "fourier", cutoff = 2, amplitude = 0.3 }\n'
                      'splits = { train = 8, val = 2, calibration = 0, test = 3 }\n'
                      '[crossover]\nshapes = [16, 32]\nsamples = 2\n')
    for d in ("data", "model"):
        (tmp_path / d).mkdir()
    seen = {}

    class Result:
        summary = {}

        def plot(self, path):
            path.write_bytes(b"")

        def sentence(self):
            return "no crossing"

    def crossover(spec, models, **kw):
        seen.update(kw)
        return Result()

    monkeypatch.setattr(_crossover_cmd, "_model", lambda folder, spec: None)
    monkeypatch.setattr(audit, "crossover", crossover)
    rc, err = _main(monkeypatch, ["crossover", str(config), "--data", str(tmp_path / "data"), "--model",
                                  str(tmp_path / "model"), "--out", str(tmp_path / "out")]
                    + (["--quiet"] if quiet else []))
    assert rc == 0, err
    assert seen["quiet"] is quiet
