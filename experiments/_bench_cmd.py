"""``byai bench WORKLOAD [--json] [--peer]``: byai's throughput on the peers' workloads.

Workloads: ``ks1d`` and ``ns2d`` (fixed-step ETDRK4 rollouts, in
:mod:`experiments._bench_solvers`), ``adaptive`` (``experiments._bench_solve``),
``fno1d``/``fno2d`` (``experiments._bench_train``) and ``generate``
(``experiments._bench_generate``); the modules are imported only when their
workload runs.

``--peer`` runs the peer's script from ``shared/bench`` in the same run, with
the peer's Python, and reports ``ratio = byai / peer`` (throughputs: byai's
median against the best of 3 that the peer script prints; ``ratio_best`` is best
against best). It also times the peer's rollout with byai's harness (median wall
time, ``ratio_wall_median``, and process CPU time, ``ratio_cpu``, which load from
other processes disturbs much less). For the
solver workloads it also checks that the trajectories are the same: the
final states of byai and exponax from the same initial conditions (written
to an ``.npy`` file and read by the peer), and byai at ``dt`` against byai
at ``dt/8``. Where the peer lives:

- scripts: ``--peers-bench DIR``, else ``$BYAI_PEERS_BENCH``, else ``shared/bench``
  next to the repository root (``../shared/bench``) or inside it;
- Python: ``--peer-python PATH``, else ``$BYAI_PEER_PYTHON``, else the
  environment that ``shared/bench/peers-env`` creates (once) in ``.peers-venv``
  at the repository root.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from ._cli import UsageError

SOLVER_WORKLOADS = ("ks1d", "ns2d")
OTHER_WORKLOADS = {  # workload -> (module, function, positional args)
    "adaptive": ("experiments._bench_solve", "bench_adaptive", ()),
    "fno1d": ("experiments._bench_train", "bench", ("fno1d",)),
    "fno2d": ("experiments._bench_train", "bench", ("fno2d",)),
    "generate": ("experiments._bench_generate", "bench", ()),
}
PEER_SCRIPTS = {"ks1d": ("exponax_stepper.py", "ks1d"), "ns2d": ("exponax_stepper.py", "ns2d"),
                "fno1d": ("neuralop_fno.py", "1"), "fno2d": ("neuralop_fno.py", "2")}
REPO = Path(__file__).resolve().parents[1]

# Run by the peer's Python: exponax's stepper of the workload from byai's initial states.
_PEER_CHECK = """\
import sys
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
sys.path.insert(0, sys.argv[1])
from exponax_stepper import WORKLOADS
make, _, _, _, steps = WORKLOADS[sys.argv[2]]
stepper = make()
u0 = jnp.asarray(np.load(sys.argv[3]))
run = jax.jit(jax.vmap(lambda u: jax.lax.fori_loop(0, steps, lambda _, v: stepper(v), u)))
np.save(sys.argv[4], np.asarray(run(u0)))
"""

# Run by the peer's Python: the peer script's own rollout, timed like byai's (wall and CPU, median).
_PEER_TIMING = """\
import json, statistics, sys, time
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import exponax as ex
sys.path.insert(0, sys.argv[1])
from exponax_stepper import WORKLOADS
name, repeats = sys.argv[2], int(sys.argv[3])
make, d, n, batch, steps = WORKLOADS[name]
st = make()
ic = ex.ic.RandomTruncatedFourierSeries(d, cutoff=5)
u0 = jnp.stack([ic(n, key=k) for k in jax.random.split(jax.random.PRNGKey(0), batch)])
roll = jax.jit(jax.vmap(ex.rollout(st, steps, include_init=False)))
roll(u0).block_until_ready()
wall, cpu = [], []
for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    roll(u0).block_until_ready()
    wall.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
print(json.dumps({"peer": "exponax", "harness": "byai", "workload": name, "seconds": wall, "cpu_seconds": cpu,
                  "seconds_median": statistics.median(wall), "cpu_s_median": statistics.median(cpu),
                  "sample_steps_per_s": batch * steps / statistics.median(wall)}))
"""


def add_arguments(parser) -> None:
    parser.add_argument("workload", choices=[*SOLVER_WORKLOADS, *OTHER_WORKLOADS], help="what to time")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--peer", action="store_true", help="also run the peer's script and report byai / peer")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per round (median is reported)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate byai and peer this many times (with --peer); the ratio of medians is reported")
    parser.add_argument("--no-check", action="store_true", help="skip the trajectory checks (dt/8, exponax)")
    parser.add_argument("--peer-python", help="Python of the peer environment (default: $BYAI_PEER_PYTHON)")
    parser.add_argument("--peers-bench", help="folder of the peer scripts (default: $BYAI_PEERS_BENCH)")


def run(args) -> int:
    if args.repeats < 1 or args.rounds < 1:
        raise UsageError(f"--repeats and --rounds must be >= 1, got {args.repeats} and {args.rounds}")
    if args.workload in SOLVER_WORKLOADS:
        result = _solver_bench(args)
    else:
        result = _other_bench(args)
    print(json.dumps(result) if args.json else _readable(result))
    return 0


# Solver workloads ----------------------------------------------------------------------
def _solver_bench(args) -> dict:
    from . import _bench_solvers as B

    name = args.workload
    peer_cmd = _peer_command(args, name) if args.peer else None
    rounds_byai, rounds_peer, rounds_harness = [], [], []
    with tempfile.TemporaryDirectory(prefix="byai-bench-") as tmp:
        harness = Path(tmp) / "peer_timing.py"
        harness.write_text(_PEER_TIMING)
        for _ in range(args.rounds if args.peer else 1):
            rounds_byai.append(B.bench(name, repeats=args.repeats))
            if peer_cmd:
                rounds_peer.append(_run_peer(peer_cmd))
                rounds_harness.append(_run_peer(
                    [peer_cmd[0], str(harness), str(Path(peer_cmd[1]).parent), name, str(args.repeats)]))
    byai = rounds_byai[0] if len(rounds_byai) == 1 else {**rounds_byai[-1], "rounds": rounds_byai}
    speed = statistics.median(r["sample_steps_per_s"] for r in rounds_byai)
    result = {"workload": name, "sample_steps_per_s": speed, "byai": byai}
    if rounds_peer:
        peer_speed = statistics.median(p["sample_steps_per_s"] for p in rounds_peer)
        result["peer"] = rounds_peer[0] if len(rounds_peer) == 1 else {**rounds_peer[-1], "rounds": rounds_peer}
        result["ratio"] = speed / peer_speed  # byai median / peer (its script reports its best of 3)
        result["ratio_best"] = (max(r["sample_steps_per_s_best"] for r in rounds_byai)
                                / max(p["sample_steps_per_s"] for p in rounds_peer))
        # The same peer rollout timed by byai's harness (median of --repeats, wall and process CPU time).
        result["peer_harness"] = rounds_harness if len(rounds_harness) > 1 else rounds_harness[0]
        result["ratio_wall_median"] = (statistics.median(h["seconds_median"] for h in rounds_harness)
                                       / statistics.median(r["seconds_median"] for r in rounds_byai))
        result["ratio_cpu"] = (statistics.median(h["cpu_s_median"] for h in rounds_harness)
                               / statistics.median(r["cpu_s_median"] for r in rounds_byai))
    if not args.no_check:
        result["check"] = _check(B, name, args if args.peer else None)
    return result


def _check(B, name, peer_args) -> dict:
    """Trajectory checks: byai at dt vs dt/8, and (with the peer) byai vs exponax from the same u0."""
    import numpy as np

    u0 = B.initial_conditions(name)
    out = np.asarray(B.final_states(name, u0))
    ref = np.asarray(B.final_states(name, u0, dt_factor=8))
    scale = float(np.sqrt(np.mean(ref**2)))
    check = {"rms_u": scale, "rms_diff_dt8": float(np.sqrt(np.mean((out - ref) ** 2)))}
    if peer_args is not None:
        python, bench_dir = _peer_python(peer_args), _bench_dir(peer_args)
        with tempfile.TemporaryDirectory(prefix="byai-bench-") as tmp:
            tmp = Path(tmp)
            (tmp / "peer_check.py").write_text(_PEER_CHECK)
            np.save(tmp / "u0.npy", B.to_exponax(name, u0))
            proc = subprocess.run([python, str(tmp / "peer_check.py"), str(bench_dir), name,
                                   str(tmp / "u0.npy"), str(tmp / "out.npy")], capture_output=True, text=True)
            if proc.returncode != 0:
                raise UsageError(f"peer check failed (exit {proc.returncode}): {_last_line(proc.stderr)}")
            peer_out = B.from_exponax(name, np.load(tmp / "out.npy", allow_pickle=False))
        if peer_out.shape != out.shape:
            raise UsageError(f"peer check returned shape {peer_out.shape}, expected {out.shape}")
        check["rms_diff_exponax"] = float(np.sqrt(np.mean((out - peer_out) ** 2)))
        check["rms_diff_exponax_dt8"] = float(np.sqrt(np.mean((peer_out - ref) ** 2)))
    return check


# Peer plumbing ---------------------------------------------------------------------------
def _bench_dir(args) -> Path:
    candidates = [args.peers_bench, os.environ.get("BYAI_PEERS_BENCH"),
                  REPO.parent / "shared" / "bench", REPO / "shared" / "bench"]
    explicit = [c for c in candidates[:2] if c]
    for c in explicit or candidates[2:]:
        if (Path(c) / "exponax_stepper.py").is_file():
            return Path(c)
    where = explicit[0] if explicit else f"{candidates[2]} or {candidates[3]}"
    raise UsageError(f"no peer benchmark scripts (exponax_stepper.py) in {where}; "
                     "set --peers-bench or BYAI_PEERS_BENCH")


def _peer_python(args) -> str:
    python = args.peer_python or os.environ.get("BYAI_PEER_PYTHON")
    if python:
        if not Path(python).is_file():
            raise UsageError(f"peer python {python} does not exist; set --peer-python or BYAI_PEER_PYTHON")
        return python
    script = _bench_dir(args) / "peers-env"
    proc = subprocess.run(["bash", str(script), str(REPO / ".peers-venv")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(f"{script} failed: {_last_line(proc.stderr)}")
    return proc.stdout.strip().splitlines()[-1]


def _peer_command(args, workload: str) -> list[str]:
    script, arg = PEER_SCRIPTS[workload]
    return [_peer_python(args), str(_bench_dir(args) / script), arg]


def _run_peer(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(f"peer benchmark {' '.join(cmd[1:])} failed (exit {proc.returncode}): "
                         f"{_last_line(proc.stderr)}")
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict):
            return result
    raise UsageError(f"peer benchmark {' '.join(cmd[1:])} printed no JSON line")


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else "(no output)"


# Training, adaptive-solve and generation workloads -----------------------------------------
def _other_bench(args) -> dict:
    module, func, pos = OTHER_WORKLOADS[args.workload]
    if args.peer and args.workload not in PEER_SCRIPTS:
        raise UsageError(f"workload {args.workload} has no peer to compare with")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise UsageError(f"workload {args.workload} is not available: module {module} is missing") from None
    # with --peer, byai and the peer alternate --rounds times, so a slow spell of a shared machine falls on both
    rounds_byai, rounds_peer = [], []
    for _ in range(args.rounds if args.peer else 1):
        rounds_byai.append(dict(getattr(mod, func)(*pos)))
        if args.peer:
            rounds_peer.append(_run_peer(_peer_command(args, args.workload)))
    result = rounds_byai[-1]
    result.setdefault("workload", args.workload)
    if args.peer:
        result["peer"] = rounds_peer[-1]
        key = next((k for k in ("samples_per_s", "sample_steps_per_s") if k in result and k in rounds_peer[-1]),
                   None)
        if key:
            result["ratio"] = (statistics.median(r[key] for r in rounds_byai)
                               / statistics.median(p[key] for p in rounds_peer))
            if len(rounds_byai) > 1:
                result["rounds"] = {"byai": [r[key] for r in rounds_byai], "peer": [p[key] for p in rounds_peer]}
    return result


def _readable(r: dict) -> str:
    if "cases" in r:  # adaptive: one line per case, then the worst values
        lines = [" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items())
                 for c in r["cases"]]
        return "\n".join(lines + [" ".join(f"{k}={v}" for k, v in r.items() if k != "cases")])
    if "byai" not in r:
        return " ".join(f"{k}={v}" for k, v in r.items())
    b = r["byai"]
    s = (f"{r['workload']}: byai {r['sample_steps_per_s']:.0f} sample-steps/s "
         f"(median of {len(b['seconds'])}, {b['seconds_median']:.3f} s; best {b['seconds_best']:.3f} s)")
    if "peer" in r:
        s += (f"; exponax {r['peer']['sample_steps_per_s']:.0f} (best of 3, {r['peer']['seconds']:.3f} s); "
              f"ratio {r['ratio']:.2f} (best/best {r['ratio_best']:.2f}; median/median "
              f"{r['ratio_wall_median']:.2f}, CPU time {r['ratio_cpu']:.2f})")
    if "check" in r:
        c = r["check"]
        s += f"; check: |u(dt) - u(dt/8)| = {c['rms_diff_dt8']:.2e}"
        if "rms_diff_exponax" in c:
            s += f", |byai - exponax| = {c['rms_diff_exponax']:.2e}"
        s += f" (RMS of u {c['rms_u']:.3g})"
    return s
