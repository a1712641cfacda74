"""Subprocess entry for the generation tests: ``python _gen_worker.py OUT``.

Generates the tiny config ``TINY`` (shared with the tests) into OUT. Environment:
``BYAI_TEST_PROCESS`` and ``BYAI_TEST_PORT`` make it process k of two on
127.0.0.1; ``BYAI_TEST_BATCH`` overrides the batch size; ``BYAI_TEST_STALL_AT=k``
makes the solve of train sample k (and later) hang, so that a test can kill the
process at a known point. The device count comes from XLA_FLAGS, set by the test
before JAX starts.
"""

import os
import sys

TINY = dict(pde="burgers", param_ranges={"nu": (0.2, 0.4)}, shape=(32,), t_end=0.4, n_times=5, rtol=1e-5,
            atol=1e-8, ic={"kind": "fourier", "cutoff": 3, "amplitude": 0.5},
            splits={"train": 6, "val": 0, "calibration": 0, "test": 1}, seed=7, batch_size=2)


def tiny_spec(**changes):
    from experiments._toml import from_dict

    import datasets

    return from_dict(datasets.DatasetSpec, dict(TINY, **changes), "data")


def _stall_at(k):
    """Hang (until killed) when the solve of train sample k or later begins."""
    import time

    from datasets import _generate

    real = _generate._solve_block

    def stalling(spec, split, block, solver):
        if split == "train" and max(block) >= k:
            time.sleep(3600)
        return real(spec, split, block, solver)

    _generate._solve_block = stalling


def main(argv):
    import jax

    if "BYAI_TEST_PORT" in os.environ:
        jax.distributed.initialize(f"127.0.0.1:{os.environ['BYAI_TEST_PORT']}", num_processes=2,
                                   process_id=int(os.environ["BYAI_TEST_PROCESS"]))
    import datasets

    batch = int(os.environ.get("BYAI_TEST_BATCH", TINY["batch_size"]))
    if "BYAI_TEST_STALL_AT" in os.environ:
        _stall_at(int(os.environ["BYAI_TEST_STALL_AT"]))
    datasets.generate(tiny_spec(batch_size=batch), argv[1], quiet=True)
    print("devices", jax.device_count(), "processes", jax.process_count(), flush=True)


if __name__ == "__main__":
    main(sys.argv)
