"""Test data: the heat equation's exact step on a 1D periodic grid, written as a byai dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def heat_trajectories(n_samples: int, n_times: int, *, n: int = 64, nu: float = 0.1, dt: float = 0.1,
                      cutoff: int = 8, seed: int = 0) -> np.ndarray:
    """``(S, T, n, 1)`` float32: random band-limited u0 (unit RMS) advanced by ``exp(-nu k^2 dt)`` per frame."""
    rng = np.random.default_rng(seed)
    k = np.fft.rfftfreq(n, 1.0 / n)
    coef = (rng.standard_normal((n_samples, k.size)) + 1j * rng.standard_normal((n_samples, k.size)))
    u0 = np.fft.irfft(np.where(k <= cutoff, coef, 0), n=n)
    u0 = u0 / u0.std(axis=1, keepdims=True)
    decay = np.exp(-nu * k**2 * dt)
    frames = [u0]
    for _ in range(n_times - 1):
        frames.append(np.fft.irfft(np.fft.rfft(frames[-1]) * decay, n=n))
    return np.stack(frames, 1)[..., None].astype(np.float32)


def write_heat(folder, *, train=32, val=8, n_times=6, n=64, nu=0.1, seed=0, scale=1.0) -> Path:
    """A dataset folder with ``train.h5`` and ``val.h5`` of heat-equation trajectories."""
    import datasets
    import solvers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    grid = solvers.Grid(shape=(n,), length=(2 * np.pi,))
    t = np.arange(n_times) * 0.1
    for name, count, s in (("train", train, seed), ("val", val, seed + 1)):
        u = heat_trajectories(count, n_times, n=n, nu=nu, seed=s) * np.float32(scale)
        datasets.write(folder / f"{name}.h5", u, t=t, grid=grid, pde="diffusion", pde_params={"nu": nu})
    return folder
