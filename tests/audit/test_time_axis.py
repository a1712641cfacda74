"""The audit's time axis: uniform up to the rounding of the dtype it is stored in, and no looser."""

import numpy as np
import pytest

import audit
from tests.audit.conftest import DT, fine, quick_config


def _with_time(ds, t):
    return ds.assign_coords(time=t)


def test_a_float32_time_axis_counts_as_uniform(burgers, splits):
    test, cal = splits
    t32 = (np.arange(test.sizes["time"]) * np.float32(DT)).astype(np.float32)
    steps = np.diff(t32.astype(np.float64))
    assert steps.max() - steps.min() > 1e-9 * DT  # the float32 axis is not uniform to float64 precision
    test32, cal32 = _with_time(test, t32), _with_time(cal, t32[: cal.sizes["time"]])
    ref = audit.run(fine(burgers, DT), test, cal, "rel_l2<=1", config=quick_config(), repeats=1)
    got = audit.run(fine(burgers, DT), test32, cal32, "rel_l2<=1", config=quick_config(), repeats=1)
    assert got.summary["score"] == ref.summary["score"]


def test_a_non_uniform_time_axis_is_refused_naming_it(burgers, splits):
    test, cal = splits
    t = DT * np.arange(test.sizes["time"])
    t[3] += 1e-4 * DT  # far above float64 rounding
    with pytest.raises(audit.AuditError, match="the test time axis: not uniformly spaced"):
        audit.run(fine(burgers, DT), _with_time(test, t), cal, "rel_l2<=1", config=quick_config(), repeats=1)
