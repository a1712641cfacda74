"""Write the walkthrough notebooks (``*.ipynb``, outputs empty) from the cells below.

Run ``python notebooks/_build.py`` after editing a cell; the notebooks are
executed top to bottom by ``tests/notebooks/test_notebooks.py`` (nbclient), at
the small sizes set in their first code cell (``SMALL = True``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


SOLVER_VERIFICATION = [
    md("""
# Solver verification: convergence orders and honest error bounds

byai's promise is that **the error a solver reports is an honest upper bound of its true error**.
This notebook checks it the way a numerical analyst would:

1. the fixed-step ETDRK integrators converge at their stated orders (1, 2, 4) on viscous Burgers;
2. the adaptive `solve` reports, for every saved frame, an error bound that is at least the true
   error against a much more precise reference.

Set `SMALL = False` for finer grids and more step sizes.
"""),
    code("""
import jax
import matplotlib.pyplot as plt
import numpy as np

import solvers
from solvers import Burgers, Grid, rollout, stepper

SMALL = True
N = 64 if SMALL else 256
grid = Grid(shape=(N,), length=(2 * np.pi,))
pde = Burgers(grid, nu=0.1)
(x,) = grid.coordinates()
u0 = 0.5 * (np.sin(x) + 0.5 * np.cos(2 * x))[:, None]
T = 0.5
"""),
    md("""
## Convergence order of the fixed-step integrators

For each method and step size `dt` we integrate to `T` and measure the RMS error against ETDRK4 with a
step 8 times smaller than the smallest tested. The slope of log(error) against log(dt) is the observed
order.
"""),
    code("""
def integrate(method, n_steps):
    step = stepper(pde, dt=T / n_steps, method=method)
    return jax.jit(lambda u: rollout(step, u, n_steps)[-1])(u0)

def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))

steps = [8, 16, 32, 64] if SMALL else [8, 16, 32, 64, 128, 256]
reference = integrate("etdrk4", steps[-1] * 8)
orders, errors = {}, {}
for method in ("etdrk1", "etdrk2", "etdrk4"):
    errors[method] = [rms(integrate(method, n) - reference) for n in steps]
    dts = T / np.array(steps)
    orders[method] = np.polyfit(np.log(dts), np.log(errors[method]), 1)[0]
    print(f"{method}: observed order {orders[method]:.2f}")
"""),
    code("""
fig, ax = plt.subplots(figsize=(5, 4))
dts = T / np.array(steps)
for method, expected in (("etdrk1", 1), ("etdrk2", 2), ("etdrk4", 4)):
    ax.loglog(dts, errors[method], "o-", label=f"{method} (slope {orders[method]:.2f}, expected {expected})")
ax.set_xlabel("time step dt")
ax.set_ylabel("RMS error at T")
ax.legend()
ax.set_title("Burgers, nu = 0.1")
plt.show()
"""),
    code("""
# the observed orders must match the methods' orders (a failing cell stops the notebook)
for method, expected in (("etdrk1", 1), ("etdrk2", 2), ("etdrk4", 4)):
    assert abs(orders[method] - expected) < 0.3, (method, orders[method])
"""),
    md("""
## Honest error bounds of the adaptive solver

`solvers.solve(pde, u0, t, rtol, atol)` adapts its step to meet the tolerance and returns `Solution.error`,
an upper bound of each frame's RMS error. We compare it with the true error against a solve at a
tolerance 1000 times tighter than the tightest tested.
"""),
    code("""
ts = np.linspace(0.0, T, 6)
results = {}
for rtol in (1e-4, 1e-6, 1e-8):
    sol = solvers.solve(pde, u0, t=ts, rtol=rtol, atol=rtol * 1e-4)
    results[rtol] = (sol, sol.stats)
tight = solvers.solve(pde, u0, t=ts, rtol=1e-11, atol=1e-15)
for rtol, (sol, stats) in results.items():
    true = np.sqrt(np.mean((np.asarray(sol.u) - np.asarray(tight.u)) ** 2, axis=(1, 2)))
    bound = np.asarray(sol.error)
    honest = bool(np.all(true <= bound + 1e-15))
    print(f"rtol={rtol:.0e}: worst true error {true.max():.2e}, worst reported bound {bound.max():.2e}, "
          f"honest: {honest}, {stats['accepted']} accepted / {stats['rejected']} rejected steps, "
          f"grid refinements {stats.get('refinements', 0)}")
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 4))
for rtol, (sol, _) in results.items():
    true = np.sqrt(np.mean((np.asarray(sol.u) - np.asarray(tight.u)) ** 2, axis=(1, 2)))
    line, = ax.semilogy(ts[1:], np.asarray(sol.error)[1:], "--", label=f"reported bound, rtol={rtol:.0e}")
    ax.semilogy(ts[1:], np.maximum(true[1:], 1e-18), "o-", color=line.get_color(), label=f"true error, rtol={rtol:.0e}")
ax.set_xlabel("t")
ax.set_ylabel("RMS error")
ax.legend(fontsize=7)
ax.set_title("the reported bound (dashed) lies above the true error")
plt.show()
"""),
    code("""
for rtol, (sol, _) in results.items():
    true = np.sqrt(np.mean((np.asarray(sol.u) - np.asarray(tight.u)) ** 2, axis=(1, 2)))
    assert np.all(true <= np.asarray(sol.error) + 1e-15), f"bound not honest at rtol={rtol}"
"""),
]


HYBRID = [
    md("""
# Guarded hybrid stepping

A `surrogates.HybridStepper` stands wherever a solver's `step(u) -> u` stands. Each step the surrogate
proposes a state, a *guard* says whether the step is acceptable and how much error it adds, and a carried
error budget makes sure the run never goes past its tolerance: once it would, the rest of the interval
is solved by the solver.

To see the mechanics without training anything, the "surrogate" here is the solver's own step plus a
known perturbation, so the error each surrogate step adds is known exactly. `byai hybrid` does the same
with a trained surrogate and the audit's guards (see `quickstart.ipynb`).
"""),
    code("""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from solvers import Burgers, Grid, rollout, stepper
from surrogates import HybridStepper

SMALL = True
grid = Grid(shape=(64 if SMALL else 256,), length=(2 * np.pi,))
pde = Burgers(grid, nu=0.05)
solver = stepper(pde, dt=0.05)
(x,) = grid.coordinates()
u0 = jnp.asarray((np.sin(x) + 0.5 * np.cos(3 * x))[:, None])
n_steps = 40

def rms(a):
    return jnp.sqrt(jnp.mean(jnp.square(a)))

def surrogate_with_error(eps):
    # adds an RMS error of exactly eps per step (sin(2x) has RMS 1/sqrt(2))
    bump = jnp.asarray(np.sqrt(2) * np.sin(2 * x)[:, None])
    return lambda u: solver(u) + eps * bump

def oracle_guard(per_step):
    # measures the proposal's true one-step error (the audit's guards estimate it instead)
    def guard(u, proposed):
        e = rms(proposed - solver(u))
        return e <= per_step, e
    return guard
"""),
    md("""
## Three surrogates, one tolerance

* **good**: adds `1e-5` per step, far below the tolerance: every step is a surrogate step;
* **marginal**: adds `1e-3` per step: the budget of `1.05e-2` lasts ten steps, then the solver takes over;
* **too poor**: adds `1e-1` per step, more than the guard accepts for a single step: solver-only.
"""),
    code("""
tolerance = 1.05e-2  # room for ten steps of 1e-3 (and a little for rounding)
reference = rollout(solver, u0, n_steps)
runs = {}
for name, eps in (("good", 1e-5), ("marginal", 1e-3), ("too poor", 1e-1)):
    hybrid = HybridStepper(solver, surrogate_with_error(eps), oracle_guard(5e-3), tolerance=tolerance)
    traj = jax.jit(hybrid.rollout, static_argnums=1)(u0, n_steps)
    true = jax.vmap(rms)(traj.u - reference)
    runs[name] = (traj, true)
    f = traj.final
    print(f"{name:9s}: {int(f.surrogate_steps):2d} surrogate / {int(f.solver_steps):2d} solver steps, "
          f"guard refusals {int(f.rejected):2d}, budget exhausted: {bool(f.exhausted)}, "
          f"true error {float(true.max()):.1e} <= carried estimate {float(traj.error.max()):.1e} <= tolerance")
"""),
    code("""
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
t = 0.05 * np.arange(n_steps + 1)
for i, (name, (traj, true)) in enumerate(runs.items()):
    line, = ax1.semilogy(t, np.maximum(np.asarray(true), 1e-16), label=f"{name}: true error")
    ax1.semilogy(t, np.maximum(np.asarray(traj.error), 1e-16), "--", color=line.get_color(), label=f"{name}: carried estimate")
    ax2.plot(t[1:], np.asarray(traj.surrogate) + 0.05 * i, ".", color=line.get_color())
ax1.axhline(tolerance, color="k", lw=0.8, label="tolerance")
ax1.set_ylabel("RMS error vs solver")
ax1.legend(fontsize=7, ncol=2)
ax2.set_yticks([0, 1], ["solver", "surrogate"])
ax2.set_xlabel("t")
plt.show()
"""),
    code("""
good, marginal, poor = (runs[k][0].final for k in ("good", "marginal", "too poor"))
assert int(good.surrogate_steps) == n_steps
assert int(marginal.surrogate_steps) == 10 and bool(marginal.exhausted)
assert int(poor.surrogate_steps) == 0
for traj, true in runs.values():
    assert float(true.max()) <= tolerance
"""),
    md("""
## Re-anchoring and error growth

`correct_every=k` forces a solver step every k steps, and `growth` states how much the dynamics amplify an
earlier error per step (1 for diffusive flows; larger for chaotic ones), which makes the carried estimate
grow geometrically and the budget last fewer steps.
"""),
    code("""
for growth in (1.0, 1.1):
    hybrid = HybridStepper(solver, surrogate_with_error(1e-3), oracle_guard(5e-3), tolerance=tolerance,
                           correct_every=4, growth=growth)
    traj = hybrid.rollout(u0, n_steps)
    pattern = "".join("S" if s else "." for s in np.asarray(traj.surrogate))
    print(f"growth={growth}: {pattern}  (S = surrogate step, . = solver step)")
"""),
    md("""
## It is a stepper

The plain call `hybrid(u)` is stateless (the guard decides each step, no budget carried), pure, and
jit- and vmap-able, so existing code that takes a solver stepper takes it unchanged.
"""),
    code("""
hybrid = HybridStepper(solver, surrogate_with_error(1e-5), oracle_guard(5e-3), tolerance=tolerance)
batch = jnp.stack([u0, 0.5 * u0, -u0])
out = jax.jit(jax.vmap(hybrid))(batch)
print(out.shape, float(jnp.max(jnp.abs(out - jax.vmap(solver)(batch)))))
"""),
]


QUICKSTART = [
    md("""
# byai quick start

The whole toolkit on 1-D viscous Burgers, small enough to run in about a minute on a laptop CPU:

1. **generate** reference data with an honest tolerance (`byai generate`),
2. **look** at it with xarray,
3. **train** an FNO surrogate on it (`byai train`),
4. **audit** the surrogate against an accuracy requirement (`byai audit`) and read the report,
5. **hybrid**: let the surrogate replace solver steps only where its error stays within a tolerance.

Each step is the command-line verb of the same name (`main([...])` is exactly `byai ...` in a shell);
`byai run experiments/quickstart.toml --out runs/quickstart` runs all of them at the full quick-start size.
Set `SMALL = False` below for that size.
"""),
    code("""
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import datasets
from experiments._cli import main as byai

SMALL = True
run = Path(tempfile.mkdtemp(prefix="byai-quickstart-"))
config = run / "small.toml"
config.write_text(f\"\"\"
[data]
pde = "burgers"
params = {{ nu = 0.1 }}
shape = [64]
t_end = {1.0 if SMALL else 2.0}
n_times = {11 if SMALL else 21}
rtol = 1e-6
atol = 1e-10
ic = {{ kind = "fourier", cutoff = 3, amplitude = 0.5 }}
splits = {{ train = {32 if SMALL else 96}, val = 4, calibration = 10, test = 4 }}
batch_size = 16

[model]
kind = "fno"
width = {16 if SMALL else 32}
modes = [{16 if SMALL else 32}]
depth = {2 if SMALL else 4}

[train]
steps = {120 if SMALL else 1500}
batch_size = 16
lr = 3e-3
warmup = 10
val_every = 50
checkpoint_every = 50

[audit]
requirement = "rel_l2<=0.2"
horizon = 5
alpha = 0.1
equal_accuracy = {{ coarsen = [1, 2], substeps = [1], methods = ["etdrk4"], repeats = 1 }}

[hybrid]
tolerance = {0.1 if SMALL else 5e-2}
guard = "conformal"
repeats = 1
\"\"\")
print(run)
"""),
    md("""
## 1. Generate reference data

Every frame is solved with an adaptive ETDRK4 solver to `rtol = 1e-6`, and the file stores, next to each
frame, the solver's own upper bound of its error.
"""),
    code("""
assert byai(["generate", str(config), "--out", str(run / "data"), "--quiet"]) == 0
sorted(p.name for p in (run / "data").glob("*.h5"))
"""),
    md("""
## 2. Look at the data with xarray

`datasets.open` returns a lazily backed `xarray.Dataset`; plain `xarray.open_dataset(path, engine="h5netcdf")`
reads the same file.
"""),
    code("""
ds = datasets.open(run / "data" / "train.h5")
print(ds)
print("tolerance:", ds.attrs["rtol"], ds.attrs["atol"], "| PDE:", ds.attrs["pde"])
"""),
    code("""
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
u = ds["u"].isel(sample=0, channel=0)
u.plot(ax=ax1, x="x", y="time")
ax1.set_title("sample 0: u(x, t)")
ds["error_estimate"].isel(sample=slice(0, 4)).plot.line(ax=ax2, x="time", yscale="log")
ax2.set_title("the solver's error bound per frame")
plt.tight_layout()
plt.show()
"""),
    md("""
## 3. Train an FNO surrogate

It learns the map from one frame to the next (one save interval). The loss curve is written as JSON lines.
"""),
    code("""
assert byai(["train", str(config), "--data", str(run / "data"), "--out", str(run / "model"), "--quiet"]) == 0
metrics = [json.loads(line) for line in (run / "model" / "metrics.jsonl").read_text().splitlines()]
steps = [m["step"] for m in metrics if "loss" in m]
losses = [m["loss"] for m in metrics if "loss" in m]
plt.semilogy(steps, losses)
plt.xlabel("step")
plt.ylabel("training loss")
plt.show()
assert losses[-1] < 0.5 * losses[0], "the surrogate did not learn"
"""),
    md("""
## 4. Audit the surrogate

The audit rolls the surrogate out from every test initial condition, compares with the reference,
states each error as a multiple of the solver's tolerance, gives a split-conformal bound from the
calibration split and compares with the solver at equal accuracy. Exit status 0 means the requirement
holds, 1 that it fails. (At `SMALL` size the 120-step model is rough and may well fail `rel_l2<=0.2`;
the report says by how much. The full quick start passes `rel_l2<=0.1`.)
"""),
    code("""
rc = byai(["audit", str(config), "--data", str(run / "data"), "--model", str(run / "model"),
           "--out", str(run / "audit"), "--quiet"])
report = json.loads((run / "audit" / "report.json").read_text())
print("exit status", rc, "| passed:", report["passed"])
print("requirement:", report["requirement"]["text"], "over", report["requirement"]["horizon"], "steps")
print("conformal:", {k: report["conformal"][k] for k in ("alpha", "bound", "coverage_calibration", "coverage_test")})
print("equal accuracy:", {k: report["equal_accuracy"].get(k) for k in ("surrogate_seconds", "solver_seconds", "speedup")})
assert rc in (0, 1) and rc == (0 if report["passed"] else 1)
"""),
    md("""
`report.html` in the same folder is the page for people: verdict first, then error against rollout step
with the threshold and the solver tolerance drawn in, histograms, spectra, the cost-accuracy plot and the
worst sample.

## 5. Guarded hybrid stepping

The hybrid takes a surrogate step only when the audit's calibrated one-step bound says the accumulated
error stays within `[hybrid] tolerance`, and the solver's step otherwise.
"""),
    code("""
assert byai(["hybrid", str(config), "--data", str(run / "data"), "--model", str(run / "model"),
             "--out", str(run / "hybrid"), "--quiet"]) == 0
hybrid = json.loads((run / "hybrid" / "hybrid.json").read_text())
print({k: hybrid[k] for k in ("tolerance", "error_vs_reference", "surrogate_steps", "solver_steps",
                              "speedup_vs_solver", "within_tolerance", "note")})
assert hybrid["within_tolerance"]
"""),
    code("""
from IPython.display import Image
Image(filename=str(run / "hybrid" / "hybrid.png"))
"""),
]


PYTHON_API = [
    md("""
# byai from Python: your own loop, the audit of any callable, the guarded hybrid

The command line is a thin layer over three Python calls that fit in your own simulation code:

* `surrogates.load_stepper(model_dir)` gives a trained surrogate as `step(u) -> u` on one state `(*grid, C)`
  in physical units (normalisation inside), over one save interval; a solver's `solvers.stepper(pde, dt)`
  honours the same contract;
* `audit.run(step, test, calibration, requirement)` audits **any** such callable against reference data;
* `surrogates.HybridStepper(solver_step, surrogate_step, guard, tolerance=...)` takes surrogate steps only
  while a guard and an error budget allow them.

A small model is trained first with the command line (`main([...])` is exactly `byai ...` in a shell).
"""),
    code("""
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import audit
import datasets
import solvers
import surrogates
from experiments._cli import main as byai

SMALL = True
run = Path(tempfile.mkdtemp(prefix="byai-python-api-"))
config = run / "small.toml"
config.write_text(f\"\"\"
[data]
pde = "burgers"
params = {{ nu = 0.1 }}
shape = [64]
t_end = 1.0
n_times = 11
rtol = 1e-6
atol = 1e-10
ic = {{ kind = "fourier", cutoff = 3, amplitude = 0.5 }}
splits = {{ train = {32 if SMALL else 96}, val = 4, calibration = 10, test = 4 }}

[model]
kind = "fno"
width = 16
modes = [16]
depth = 2

[train]
steps = {120 if SMALL else 1500}
batch_size = 16
lr = 3e-3
warmup = 10
val_every = 60
checkpoint_every = 60
\"\"\")
assert byai(["generate", str(config), "--out", str(run / "data"), "--quiet"]) == 0
assert byai(["train", str(config), "--data", str(run / "data"), "--out", str(run / "model"), "--quiet"]) == 0
"""),
    md("""
## 1. The surrogate in your own loop

`load_stepper` reads the model and its normalisation statistics; the step is pure, so `jax.jit` and
`jax.vmap` apply. The data file says which PDE it holds (`datasets.pde_from_attrs`), so the solver's own
step over the same interval is at hand for comparison: here ETDRK4 with four sub-steps per save interval.
"""),
    code("""
step, info = surrogates.load_stepper(run / "model")
test = datasets.open(run / "data" / "test.h5")
calibration = datasets.open(run / "data" / "calibration.h5")
pde, grid = datasets.pde_from_attrs(test)
dt = float(test["time"][1] - test["time"][0])
fine = solvers.stepper(pde, dt / 4)
solver_step = jax.jit(lambda u: jax.lax.fori_loop(0, 4, lambda i, v: fine(v), u))
step = jax.jit(step)

reference = np.asarray(test["u"].isel(sample=0).values)  # (time, x, channel)
u_surrogate = u_solver = jnp.asarray(reference[0])
errors = []
for n in range(1, reference.shape[0]):
    u_surrogate, u_solver = step(u_surrogate), solver_step(u_solver)
    errors.append((float(jnp.sqrt(jnp.mean((u_surrogate - reference[n]) ** 2))),
                   float(jnp.sqrt(jnp.mean((u_solver - reference[n]) ** 2)))))
errors = np.array(errors)
print("RMS error per step, surrogate:", np.array2string(errors[:, 0], precision=2))
print("RMS error per step, solver   :", np.array2string(errors[:, 1], precision=2))
assert errors[:, 1].max() < errors[:, 0].max()  # the solver at 4 sub-steps is the more accurate here
"""),
    code("""
(x,) = grid.coordinates()
plt.plot(x, reference[-1, :, 0], "k", label="reference")
plt.plot(x, np.asarray(u_surrogate)[:, 0], "--", label="surrogate")
plt.xlabel("x"); plt.ylabel("u"); plt.title(f"t = {float(test['time'][-1]):.1f}"); plt.legend()
plt.show()
"""),
    md("""
## 2. The audit of any callable

`audit.run` takes a stepper, whatever made it: the trained surrogate, your own model wrapped as
`u -> next u`, or a cheap solver setting. It returns a `Report`; `report.summary` is what `byai audit`
writes to `report.json`, and `report.passed` is the verdict (both the test quantile and the conformal
bound within the threshold). Here the same requirement judges the surrogate and a one-step ETDRK1
solver standing in for "someone else's model". (At `SMALL` size the 120-step surrogate is rough and may
well fail; the report says by how much.)
"""),
    code("""
requirement = "rel_l2<=0.2"
for name, candidate in (("surrogate", step), ("ETDRK1, one step per frame", solvers.stepper(pde, dt, method="etdrk1"))):
    report = audit.run(candidate, test, calibration, requirement, pde=pde, repeats=1)
    s = report.summary
    print(f"{name:28s} passed={report.passed!s:5s} rel_l2 q{s['score']['quantile']}="
          f"{s['score']['test_quantile']:.3g}  conformal bound={s['conformal']['bound']:.3g}")
"""),
    md("""
## 3. The guarded hybrid

The conformal guard trusts the calibrated one-step bound of the surrogate (`audit.one_step_bound`, the
number `report.json["conformal"]["one_step_rmse_bound"]` holds). The hybrid carries the error it has
accepted and hands over to the solver before the tolerance would be passed.
"""),
    code("""
bound = audit.one_step_bound(step, calibration, alpha=0.1)
tolerance = 4 * bound
hybrid = surrogates.HybridStepper(solver_step, step, audit.conformal_guard(bound, tolerance), tolerance=tolerance)
n = reference.shape[0] - 1
traj = jax.jit(hybrid.rollout, static_argnums=1)(jnp.asarray(reference[0]), n)
true = np.sqrt(np.mean((np.asarray(traj.u) - reference) ** 2, axis=(1, 2)))
print(f"one-step bound {bound:.2e}, tolerance {tolerance:.2e}")
print("steps:", "".join("S" if s else "." for s in np.asarray(traj.surrogate)), "(S = surrogate, . = solver)")
print(f"true error at most {true.max():.2e}; the run's carried estimate at most {float(np.max(traj.error)):.2e}")
assert int(traj.final.surrogate_steps) >= 1
assert true.max() <= tolerance
"""),
]


NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "solver_verification.ipynb": SOLVER_VERIFICATION,
    "hybrid_stepping.ipynb": HYBRID,
    "python_api.ipynb": PYTHON_API,
}


def build(names=None) -> list[Path]:
    """Write the notebooks (all, or those in ``names``); returns their paths."""
    written = []
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        for i, cell in enumerate(cells):
            cell["id"] = f"{Path(name).stem}-{i}"  # stable ids: rebuilding gives the same bytes
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}})
        nbformat.validate(nb)
        path = HERE / name
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build(sys.argv[1:]):
        print(p)
