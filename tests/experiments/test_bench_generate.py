"""byai bench generate's storage path runs (it broke silently when the journal assembly gained its cost
argument): a tiny split solved and written, its figures finite and its file non-empty."""

import math

from experiments._bench_generate import bench


def test_the_generation_bench_solves_and_writes_a_split():
    out = bench(samples=2, t_end=0.5, n_times=6, batched=False)
    assert out["samples"] == 2 and out["file_bytes"] > 0 and out["batched"] is None
    assert all(math.isfinite(out[k]) and out[k] > 0 for k in ("solve_s", "write_s", "samples_per_s"))
