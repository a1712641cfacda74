"""Benchmark of byai's training step on the peers' FNO workloads (../shared/bench/README.md).

``bench("fno1d")`` / ``bench("fno2d")`` build the FNO of the workload with
``surrogates.build_model`` / ``build_optimizer`` and time ``surrogates.make_steps``'s
jitted, donating train step on a ``('data',)`` mesh over every device: the code
``byai train`` runs, fed with random batches of the workload's shape (as the peer
script does). Compilation and three warm-up steps are excluded; the figure is the
median over ``repeats`` timed blocks of ``steps`` steps each, with the spread, and the
process CPU time per step (median; all threads, less disturbed by other load than wall time).
"""

from __future__ import annotations

import statistics
import time

from experiments._cli import UsageError

WORKLOADS = {
    # name: (space, batch, modes, width, depth), as in ../shared/bench/README.md
    "fno1d": ((1024,), 32, (16,), 64, 4),
    "fno2d": ((64, 64), 16, (12, 12), 32, 4),
}


def bench(name: str, *, steps: int = 20, repeats: int = 5, transform: str | None = None) -> dict:
    """Training throughput of byai's FNO on workload ``name``: ``samples_per_s`` (median), ``params``.

    ``params`` counts a complex spectral weight once (as ``torch.numel`` does, so it compares
    with neuraloperator's count); ``params_real`` counts real scalars. ``transform`` forces
    the spectral convolution's transform (``"fft"`` or ``"dft"``; default: the model's choice).
    """
    if name not in WORKLOADS:
        raise UsageError(f"workload: must be one of {', '.join(WORKLOADS)}, got {name!r}")
    import jax
    import numpy as np
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec as P

    import surrogates

    space, batch, modes, width, depth = WORKLOADS[name]
    model_cfg = surrogates.ModelConfig(kind="fno", width=width, modes=modes, depth=depth, residual=False)
    cfg = surrogates.TrainConfig(steps=10_000, batch_size=batch, lr=1e-3, warmup=0, weight_decay=1e-2, clip=0.0)
    model = surrogates.build_model(model_cfg, ndim=len(space), channels=1, input_steps=1, num_params=0)
    if transform is not None:
        for conv in model.net.spectral:
            conv.transform = transform
    optimizer = surrogates.build_optimizer(model, cfg)
    n_dev = jax.device_count()
    mesh = jax.make_mesh((n_dev,), ("data",))
    train_step, _ = surrogates.make_steps(model, optimizer, cfg, mesh)
    state = jax.device_put(nnx.state((model, optimizer)), NamedSharding(mesh, P()))
    rng = np.random.default_rng(0)
    data = NamedSharding(mesh, P("data"))
    batch_arrays = {"input": rng.standard_normal((batch, *space, 1), np.float32),
                    "target": rng.standard_normal((batch, 1, *space, 1), np.float32)}
    batch_arrays = jax.device_put(batch_arrays, data)
    t0 = time.perf_counter()
    state, m = train_step(state, batch_arrays)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    for _ in range(2):
        state, m = train_step(state, batch_arrays)
    jax.block_until_ready((state, m))
    rates, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            state, m = train_step(state, batch_arrays)
        jax.block_until_ready((state, m))
        rates.append(steps * batch / (time.perf_counter() - t0))
        cpu.append((time.process_time() - c0) / steps)
    counts = surrogates.count_params(model)
    med = statistics.median(rates)
    return {
        "workload": name, "samples_per_s": med, "samples_per_s_min": min(rates), "samples_per_s_max": max(rates),
        "cpu_s_per_step": statistics.median(cpu),
        "repeats": repeats, "steps_per_repeat": steps, "params": counts["complex_as_one"],
        "params_real": counts["real"], "devices": n_dev, "compile_s": compile_s,
        "transform": transform or "auto", "final_loss": float(m["loss"]),
    }


if __name__ == "__main__":  # python -m experiments._bench_train fno1d [fft|dft]
    import json
    import sys

    print(json.dumps(bench(sys.argv[1] if len(sys.argv) > 1 else "fno1d",
                           transform=sys.argv[2] if len(sys.argv) > 2 else None)))
