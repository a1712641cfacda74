#!/usr/bin/env bash
# byai on an accelerator: the benches and the 2-D flagship's generate -> train -> audit -> hybrid, with
# absolute figures, in under 8 minutes on one GPU. Nothing in byai depends on this script (CI has no GPU).
#
#   bash experiments/gpu_check.sh                  # on the GPU machine, from anywhere
#   SMALL=1 bash experiments/gpu_check.sh          # a CPU rehearsal of the same steps in a few minutes
#
# What it does, each step under `timeout` (a step that times out or fails is reported and the rest go on):
#   0. setup: uses $PYTHON (default .venv/bin/python, created with `python3 -m venv .venv` and
#      `pip install -e .` when byai does not import). Only when JAX sees no GPU and `nvidia-smi` finds one,
#      it runs `pip install "jax[cuda12]==<the installed jax version>"` (set NO_INSTALL=1 to forbid any
#      install; the script then runs on whatever JAX sees). It installs nothing else.
#   1. `byai bench ks1d|ns2d|fno1d|fno2d --json --no-check` (the peers' fixed workloads: ETDRK4 sample-steps/s
#      of 1-D Kuramoto-Sivashinsky and 2-D Kolmogorov flow, FNO training samples/s in 1-D and 2-D).
#   2. the flagship experiments/kolmogorov.toml with its splits cut to train 32 / val 4 / calibration 16 /
#      test 8 (a generated copy, $OUT/kolmogorov_small.toml; grid, PDE, tolerance, model and audit unchanged),
#      `byai generate`, `byai train --steps $TRAIN_STEPS` (default 300), `byai audit` and `byai hybrid`.
#   3. a summary of absolute figures read from the bench JSON lines, the data files' and the model's recorded
#      cost, report.json (`equal_accuracy`, `cost`) and hybrid.json.
#
# How to read the summary: "bench" lines are throughputs (sample-steps/s for the solvers, training samples/s
# for the FNOs) on this device; "flagship" lines give wall seconds per stage, the surrogate's and the equal-
# accuracy solver's seconds per rollout (audit), the speedup at equal accuracy (solver / surrogate seconds;
# "upper" means the cheapest solver setting tried already matched, so the true speedup is at most that;
# "lower" that none matched), the break-even (rollouts after which generation + training are paid back, or
# "never"), and the hybrid's speedup over the solver alone with its error against the tolerance. A few
# hundred training steps give a weaker surrogate than the full config's: its error is larger, so the
# equal-accuracy solver gets cheaper, and the speedup here understates a fully trained model's on the same
# device. Exit status 0 when every step ran, 1 when some step failed or timed out (the summary says which).
#
# Environment: OUT (default /tmp/byai_gpu_check, emptied first), PYTHON, SMALL=1 (CPU rehearsal: a smaller
# copy, fewer steps, shorter timeouts), NO_INSTALL=1, TRAIN_STEPS.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/byai_gpu_check}
PYTHON=${PYTHON:-.venv/bin/python}
SMALL=${SMALL:-0}
NO_INSTALL=${NO_INSTALL:-0}
if [ "$SMALL" = 1 ]; then
    TRAIN_STEPS=${TRAIN_STEPS:-20}; SPLITS="train = 4, val = 2, calibration = 10, test = 2"; HORIZON_CAP=2
    T_BENCH=150; T_GEN=300; T_TRAIN=300; T_AUDIT=400; T_HYBRID=300
else
    TRAIN_STEPS=${TRAIN_STEPS:-300}; SPLITS="train = 32, val = 4, calibration = 16, test = 8"; HORIZON_CAP=0
    T_BENCH=40; T_GEN=60; T_TRAIN=60; T_AUDIT=140; T_HYBRID=50  # at most 470 s in all
fi
rm -rf "$OUT" && mkdir -p "$OUT"
FAILED=""
START=$(date +%s)

step() {  # step NAME TIMEOUT CMD...: run CMD under timeout, log to $OUT/NAME.log, record its wall seconds
    local name=$1 limit=$2; shift 2
    local t0 ms rc
    t0=$(date +%s%N)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "$name $rc $(( ms / 1000 )).$(printf %03d $(( ms % 1000 )))" >>"$OUT/steps.txt"
    if [ "$rc" != 0 ]; then
        FAILED="$FAILED $name(rc=$rc)"
        if [ "$rc" = 124 ]; then echo "  $name: timed out after ${limit} s; last lines of $OUT/$name.log:"
        else echo "  $name: exit $rc; last lines of $OUT/$name.log:"; fi
        tail -n 3 "$OUT/$name.log" | sed 's/^/    /'
    else
        echo "  $name: done in $(( ms / 1000 )).$(printf %03d $(( ms % 1000 ))) s"
    fi
    return 0
}

echo "== setup"
if ! "$PYTHON" -c "import solvers, surrogates, audit" 2>/dev/null; then
    if [ "$NO_INSTALL" = 1 ]; then echo "byai does not import with $PYTHON and NO_INSTALL=1"; exit 1; fi
    [ -x "$PYTHON" ] || python3 -m venv .venv
    PYTHON=.venv/bin/python
    "$PYTHON" -m pip install -q -e . || { echo "pip install -e . failed"; exit 1; }
fi
BYAI=("$PYTHON" -m experiments)
PLATFORM=$("$PYTHON" -c "import jax; print(jax.devices()[0].platform)" 2>/dev/null)
if [ "$PLATFORM" != gpu ] && [ "$SMALL" != 1 ] && [ "$NO_INSTALL" != 1 ] && command -v nvidia-smi >/dev/null \
        && nvidia-smi -L >/dev/null 2>&1; then
    JAXV=$("$PYTHON" -c "import jax; print(jax.__version__)")
    echo "  JAX sees no GPU but nvidia-smi does: pip install jax[cuda12]==$JAXV"
    "$PYTHON" -m pip install -q "jax[cuda12]==$JAXV" || echo "  the install failed: running on $PLATFORM"
    PLATFORM=$("$PYTHON" -c "import jax; print(jax.devices()[0].platform)" 2>/dev/null)
fi
"$PYTHON" -c "import jax; d = jax.devices(); print(f'  JAX {jax.__version__}: {len(d)} x {d[0].device_kind} ({d[0].platform})')" \
    | tee "$OUT/device.txt"

echo "== benches"
for w in ks1d ns2d fno1d fno2d; do
    step "bench_$w" "$T_BENCH" "${BYAI[@]}" bench "$w" --json --no-check --repeats 3
done

echo "== flagship (experiments/kolmogorov.toml, splits cut to: $SPLITS)"
"$PYTHON" - "$OUT/kolmogorov_small.toml" "$SPLITS" "$HORIZON_CAP" <<'EOF'
import re, sys
text = open("experiments/kolmogorov.toml").read()
text, n = re.subn(r"(?m)^splits = \{[^}]*\}", "splits = { %s }" % sys.argv[2], text)
assert n == 1, "experiments/kolmogorov.toml: no 'splits = { ... }' line"
text = re.sub(r"(?m)^samples = \d+", "samples = 2", text)  # [hybrid] samples (and [crossover]'s, unused here)
data, rest = text.split("\n[model]", 1)  # generation batches: all of a split's samples at once on a GPU
text = re.sub(r"(?m)^batch_size = \d+", "batch_size = 32", data) + "\n[model]" + rest
if int(sys.argv[3]):  # SMALL: a shorter audit horizon, fewer timing repeats
    text = re.sub(r"(?m)^horizon = \d+", "horizon = %s" % sys.argv[3], text)
    text = re.sub(r"(?m)^repeats = \d+", "repeats = 1", text)
open(sys.argv[1], "w").write(text)
EOF
CFG="$OUT/kolmogorov_small.toml"
step generate "$T_GEN" "${BYAI[@]}" generate "$CFG" --out "$OUT/data" --quiet
step train "$T_TRAIN" "${BYAI[@]}" train "$CFG" --data "$OUT/data" --out "$OUT/model" --steps "$TRAIN_STEPS" --quiet
step audit "$T_AUDIT" "${BYAI[@]}" audit "$CFG" --data "$OUT/data" --model "$OUT/model" --out "$OUT/audit" --quiet
# the audit exits 1 when the requirement fails: that is a verdict, not a failure of the step
FAILED=$(echo "$FAILED" | sed 's/ audit(rc=1)//')
step hybrid "$T_HYBRID" "${BYAI[@]}" hybrid "$CFG" --data "$OUT/data" --model "$OUT/model" --out "$OUT/hybrid" \
    --audit "$OUT/audit" --quiet

echo "== summary ($(( $(date +%s) - START )) s in all)"
"$PYTHON" - "$OUT" "$TRAIN_STEPS" <<'EOF'
import json, pathlib, sys
out, steps = pathlib.Path(sys.argv[1]), sys.argv[2]
print((out / "device.txt").read_text().strip())
walls = {}
for line in (out / "steps.txt").read_text().split("\n"):
    if line:
        name, rc, sec = line.split()
        walls[name] = (int(rc), float(sec))
def fmt(x, spec=".3g"):
    return "n/a" if x is None else format(x, spec)
for w in ("ks1d", "ns2d", "fno1d", "fno2d"):
    log = out / f"bench_{w}.log"
    rows = [l for l in log.read_text().splitlines() if l.startswith("{")] if log.exists() else []
    if not rows:
        print(f"bench {w:6s}: no result (see {log})")
        continue
    r = json.loads(rows[-1])
    r = r.get("byai", r)  # the solver workloads nest byai's figures (beside the peer's with --peer)
    if "sample_steps_per_s" in r:
        print(f"bench {w:6s}: {r['sample_steps_per_s']:.4g} sample-steps/s ETDRK4 (batch {r['batch']}, {r['steps']} "
              f"steps: {r['seconds_median']:.3g} s median, compile {r['compile_s']:.3g} s)")
    else:
        print(f"bench {w:6s}: {r['samples_per_s']:.4g} training samples/s ({r['params']} parameters, "
              f"compile {r['compile_s']:.3g} s)")
for name in ("generate", "train", "audit", "hybrid"):
    rc, sec = walls.get(name, (None, None))
    print(f"flagship {name:8s}: {fmt(sec, '.1f')} s wall (exit {rc})")
rep = out / "audit" / "report.json"
if rep.exists():
    r = json.loads(rep.read_text())
    eq, cost = r.get("equal_accuracy", {}), r.get("cost", {})
    print(f"audit: {r['requirement']['text']} {'passed' if r['passed'] else 'failed'} after {steps} training steps; "
          f"surrogate error {fmt(eq.get('surrogate_error'))}, solver setting at equal accuracy "
          f"{eq.get('solver_setting')}")
    print(f"audit: seconds per rollout: surrogate {fmt(cost.get('surrogate_seconds_per_rollout'))}, solver at "
          f"equal accuracy {fmt(cost.get('solver_seconds_per_rollout'))}; speedup at equal accuracy "
          f"{fmt(eq.get('speedup'))} ({eq.get('speedup_bound', eq.get('status'))})")
    print(f"audit: generation {fmt(cost.get('generation_seconds'), '.1f')} s + training "
          f"{fmt(cost.get('training_seconds'), '.1f')} s; {cost.get('sentence', 'break-even: n/a')}")
hyb = out / "hybrid" / "hybrid.json"
if hyb.exists():
    h = json.loads(hyb.read_text())
    print(f"hybrid: speedup vs solver alone {fmt(h.get('speedup_vs_solver'))} (solver {fmt(h.get('solver_seconds'))} s, "
          f"hybrid {fmt(h.get('hybrid_seconds'))} s); error {fmt(h.get('error_vs_reference'))} vs tolerance "
          f"{fmt(h.get('tolerance'))} ({'within' if h.get('within_tolerance') else 'NOT within'}); "
          f"{h.get('surrogate_steps')} surrogate / {h.get('solver_steps')} solver steps")
EOF
if [ -n "$FAILED" ]; then echo "failed or timed out:$FAILED"; exit 1; fi
echo "all steps ran"
