"""The hybrid comparison's choices that need no rollout: which report bound applies, which settings a kind takes."""

import pytest

import solvers
from audit import AuditError, HybridResult, check_hybrid_config, compare_hybrid
from audit._hybrid import KINDS, report_one_step_bound
from datasets import SteadyMap, Trajectory
from surrogates import HybridConfig


def _report(alpha=0.1, bound=2e-5, **provenance):
    return {"conformal": {"alpha": alpha, "one_step_rmse_bound": bound}, "provenance": provenance}


def test_report_bound_applies_when_alpha_and_stated_identities_match():
    report = _report(calibration_sha256="cal", checkpoint_sha256="ckpt")
    assert report_one_step_bound(report, alpha=0.1, calibration_sha256="cal", checkpoint_sha256="ckpt") == (2e-5, "")
    # identities the report does not state are not checked
    assert report_one_step_bound(_report(), alpha=0.1, calibration_sha256="cal")[0] == 2e-5


@pytest.mark.parametrize("report, kwargs, why", [
    (_report(alpha=0.05), {}, "alpha"),
    (_report(calibration_sha256="cal"), {"calibration_sha256": "other"}, "calibration data"),
    (_report(checkpoint_sha256="ckpt"), {"checkpoint_sha256": "other"}, "model checkpoint"),
    (_report(checkpoint_sha256="ckpt"), {}, "checkpoint_sha256"),  # this model's checkpoint is unknown
    (_report(bound="inf"), {}, "no finite"),
    ({"conformal": {"alpha": 0.1}}, {}, "no finite"),
    ({}, {}, "no finite"),
])
def test_report_bound_does_not_apply_to_another_run(report, kwargs, why):
    bound, reason = report_one_step_bound(report, alpha=0.1, **kwargs)
    assert bound is None and why in reason


def test_each_problem_kind_has_a_comparison():
    assert set(KINDS) == {Trajectory, SteadyMap}
    for module in KINDS.values():
        assert all(callable(getattr(module, name)) for name in ("check_config", "compare", "line", "plot"))


@pytest.mark.parametrize("field, value", [("growth", 1.5), ("steps", 3), ("correct_every", 4),
                                          ("solver_substeps", 2), ("solver_method", "etdrk2")])
def test_a_steady_map_refuses_time_stepping_settings(field, value):
    cfg = HybridConfig(tolerance=1e-3, guard="residual", **{field: value})
    check_hybrid_config(Trajectory(), cfg)  # a trajectory takes every setting
    with pytest.raises(AuditError, match=f"hybrid.{field}: does not apply to a steady map"):
        check_hybrid_config(SteadyMap(), cfg)


def test_a_steady_map_is_guarded_by_its_residual():
    with pytest.raises(AuditError, match="hybrid.guard"):
        check_hybrid_config(SteadyMap(), HybridConfig(tolerance=1e-3, guard="conformal"))
    check_hybrid_config(SteadyMap(), HybridConfig(tolerance=1e-3, guard="residual"))


def test_result_json_is_a_copy():
    result = HybridResult(problem=SteadyMap(), summary={"cg_iterations": {"solver": 3}})
    result.to_json()["cg_iterations"]["solver"] = 0
    assert result.summary["cg_iterations"]["solver"] == 3


@pytest.mark.parametrize("kwargs, key", [({"samples": 0}, "samples"), ({"repeats": 0}, "repeats"),
                                         ({"repeats": 1.5}, "repeats")])
def test_compare_hybrid_refuses_run_settings_below_one(kwargs, key):
    with pytest.raises(solvers.InputError, match=f"^{key}: must be >= 1"):
        compare_hybrid(HybridConfig(tolerance=1e-3), None, None, None, **kwargs)
