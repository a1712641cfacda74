"""The requirement parser and the [audit] config section."""

import pytest

import audit
from experiments._toml import ConfigError, from_dict


def test_parse_absolute_and_multiple():
    r = audit.Requirement.parse("rel_l2<=0.05")
    assert (r.metric, r.threshold, r.threshold_kind, r.horizon, r.quantile, r.alpha) == (
        "rel_l2", 0.05, "absolute", None, 0.95, 0.1)
    r = audit.Requirement.parse(" rel_l2 <= 300x ", horizon=20, quantile=0.9, alpha=0.05)
    assert (r.metric, r.threshold, r.threshold_kind, r.horizon, r.quantile, r.alpha) == (
        "rel_l2", 300.0, "tolerance_multiple", 20, 0.9, 0.05)
    assert str(r) == "rel_l2<=300x"
    r = audit.Requirement.parse("tolerance_multiple<=1e3")
    assert (r.metric, r.threshold, r.threshold_kind) == ("rmse", 1000.0, "tolerance_multiple")
    assert audit.Requirement.parse("max_error<=1e-3").threshold == 1e-3


@pytest.mark.parametrize("text, match", [
    ("rel_l2<0.05", "must look like"),
    ("rel_l2>=0.05", "must look like"),
    ("foo<=1", "metric: must be one of"),
    ("rel_l2<=-1", "threshold: must be > 0"),
    ("rel_l2<=abc", "must be a number"),
    ("vrmse<=3x", "tolerance multiples is defined only"),
    ("tolerance_multiple<=3x", "not"),
])
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        audit.Requirement.parse(text)


def test_requirement_validation():
    with pytest.raises(ValueError, match="alpha"):
        audit.Requirement("rmse", 1.0, alpha=1.0)
    with pytest.raises(ValueError, match="quantile"):
        audit.Requirement("rmse", 1.0, quantile=0.2)
    with pytest.raises(ValueError, match="horizon"):
        audit.Requirement("rmse", 1.0, horizon=0)


def test_config_from_toml_table():
    cfg = from_dict(audit.AuditConfig, {
        "requirement": "rmse<=100x", "horizon": 10, "alpha": 0.2, "band_edges": [3, 9],
        "equal_accuracy": {"coarsen": [1, 2], "methods": ["etdrk4"], "substeps": [1, 4]}}, "audit")
    assert cfg.band_edges == (3, 9)
    assert cfg.equal_accuracy.methods == ("etdrk4",)
    r = cfg.to_requirement()
    assert (r.metric, r.threshold_kind, r.horizon, r.alpha) == ("rmse", "tolerance_multiple", 10, 0.2)
    assert cfg.to_requirement("nrmse<=0.1").metric == "nrmse"
    with pytest.raises(ValueError, match="--require"):
        cfg.to_requirement("nope")


@pytest.mark.parametrize("table, match", [
    ({"requirment": "rmse<=1"}, "audit.requirment: unknown key"),
    ({"requirement": "rmse<=-1"}, "audit.requirement: .*threshold"),
    ({"alpha": 2.0}, "audit.alpha: must be in"),
    ({"band_edges": [5, 3]}, "audit.band_edges"),
    ({"equal_accuracy": {"methods": ["rk4"]}}, "audit.equal_accuracy.methods"),
    ({"equal_accuracy": {"coarsen": [0]}}, "audit.equal_accuracy.coarsen"),
    ({"correlation_threshold": 1.5}, "audit.correlation_threshold"),
])
def test_config_errors_name_the_key(table, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(audit.AuditConfig, table, "audit")
