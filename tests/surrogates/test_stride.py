"""``[model] stride = k`` and ``input_steps > 1`` on the surrogate side: the loader's windows k frames apart, the
stride and step a trained model records (and refuses when damaged), and the window stepper of a model that takes
several frames."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

import datasets
import solvers
import surrogates
from experiments._config import load as load_config
from experiments._toml import ConfigError

from tests.surrogates._heat import write_heat

SAVE = 0.1  # write_heat's save interval


@pytest.fixture(scope="module")
def heat(tmp_path_factory):
    return write_heat(tmp_path_factory.mktemp("heat_stride"), train=6, val=2, n_times=8, n=16)


def _raw(path):
    import h5py

    with h5py.File(path, "r") as f:
        return f["u"][...].astype(np.float64)


IDENTITY = datasets.Normalization(np.zeros(1), np.ones(1))


@pytest.mark.parametrize("stride, inputs, targets", [(2, 1, 1), (3, 1, 2), (2, 2, 2)])
def test_loader_windows_are_frames_stride_apart(heat, stride, inputs, targets):
    u = _raw(heat / "train.h5")
    for cache_bytes in (512 * 2**20, 0):  # read once into memory, and read from the file window by window
        with datasets.Loader(heat / "train.h5", batch_size=1, shuffle=False, stride=stride, stats=IDENTITY,
                             input_steps=inputs, target_steps=targets, cache_bytes=cache_bytes) as loader:
            span = (inputs + targets - 1) * stride
            assert loader.windows_per_sample == u.shape[1] - span
            assert len(loader) == u.shape[0] * (u.shape[1] - span)
            assert loader.dt == pytest.approx(stride * SAVE, rel=1e-12)
            for step in range(len(loader)):
                s, t0 = divmod(step, loader.windows_per_sample)
                b = loader.batch(step)
                want_in = np.concatenate([u[s, t0 + j * stride] for j in range(inputs)], axis=-1)
                want_target = np.stack([u[s, t0 + (inputs + j) * stride] for j in range(targets)])
                np.testing.assert_array_equal(b["input"][0], want_in.astype(np.float32))
                np.testing.assert_array_equal(b["target"][0], want_target.astype(np.float32))


def test_stride_one_loader_is_unchanged(heat):
    with datasets.Loader(heat / "train.h5", batch_size=4, seed=3) as a, \
            datasets.Loader(heat / "train.h5", batch_size=4, seed=3, stride=1) as b:
        assert a.windows_per_sample == b.windows_per_sample == 7
        for step in range(3):
            x, y = a.batch(step), b.batch(step)
            np.testing.assert_array_equal(x["input"], y["input"])
            np.testing.assert_array_equal(x["target"], y["target"])


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_stride_is_refused_naming_it(heat, bad):
    with pytest.raises(ValueError, match="^stride: must be a positive integer"):
        surrogates.ModelConfig(stride=bad)
    with pytest.raises(solvers.InputError, match="^stride: must be a positive integer"):
        datasets.Loader(heat / "train.h5", batch_size=1, stride=bad)


def test_stride_too_long_for_the_file_and_steady_maps_are_refused(heat):
    with pytest.raises(solvers.InputError, match="^stride: .* span 9 frames, more than the 8"):
        datasets.Loader(heat / "train.h5", batch_size=1, stride=4, target_steps=2)
    with pytest.raises(solvers.InputError, match="^stride: a steady map .* must be 1"):
        datasets.SteadyMap().check_stride(2, "darcy.h5")
    assert datasets.SteadyMap().check_stride(1, "darcy.h5") == 1


def test_config_stride_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nstride = 0\n")
    with pytest.raises(ConfigError, match=r"model\.stride: must be a positive integer"):
        load_config(path)
    path.write_text("[model]\nstride = 3\n")
    assert load_config(path).model.stride == 3
    path.write_text("[model]\nwidth = 8\n")
    assert load_config(path).model.stride == 1


def _train(heat, out, *, stride=1, input_steps=1, steps=2):
    mc = surrogates.ModelConfig(kind="fno", width=4, modes=(4,), depth=1, stride=stride)
    tc = surrogates.TrainConfig(steps=steps, batch_size=2, warmup=0, val_every=0, checkpoint_every=0,
                                input_steps=input_steps)
    with datasets.Loader(heat / "train.h5", batch_size=2, input_steps=input_steps, stride=stride) as loader:
        surrogates.train(mc, tc, loader, out, quiet=True, data_info={"dataset_sha256": loader.verify()})
    return out


@pytest.fixture(scope="module")
def stride2_model(heat, tmp_path_factory):
    return _train(heat, tmp_path_factory.mktemp("m") / "stride2", stride=2)


def test_trained_model_records_its_stride_and_step(heat, stride2_model, tmp_path):
    meta = json.loads((stride2_model / "byai_model.json").read_text())
    assert meta["stride"] == 2 and meta["model_config"]["stride"] == 2
    assert meta["dt"] == pytest.approx(2 * SAVE, rel=1e-12)
    _, info = surrogates.load_stepper(stride2_model)
    assert info["stride"] == 2 and info["dt"] == pytest.approx(2 * SAVE) and info["input_steps"] == 1
    one = _train(heat, tmp_path / "stride1")
    meta1 = json.loads((one / "byai_model.json").read_text())
    assert "stride" not in meta1["model_config"]  # the stride-1 model config is what it was before strides
    assert meta1["stride"] == 1 and meta1["dt"] == pytest.approx(SAVE)
    # a model config of another stride cannot resume this checkpoint
    mc = surrogates.ModelConfig(kind="fno", width=4, modes=(4,), depth=1, stride=1)
    tc = surrogates.TrainConfig(steps=3, batch_size=2, warmup=0, val_every=0, checkpoint_every=0)
    with datasets.Loader(heat / "train.h5", batch_size=2) as loader:
        with pytest.raises(surrogates.CheckpointError, match="different model_config"):
            surrogates.train(mc, tc, loader, stride2_model, resume=True, quiet=True,
                             data_info={"dataset_sha256": loader.verify()})
    with datasets.Loader(heat / "train.h5", batch_size=2, stride=3) as loader:
        with pytest.raises(solvers.InputError, match=r"^model\.stride: 1 but the loader's windows are 3"):
            surrogates.train(mc, tc, loader, tmp_path / "other", quiet=True)


@pytest.mark.parametrize("key, value, match", [
    ("stride", 0, "stride must be a positive integer"), ("stride", "2", "stride must be a positive integer"),
    ("stride", 3, "stride 3 differs from its model_config's stride 2"),
    ("dt", -0.2, "dt must be a finite number > 0"), ("dt", float("nan"), "dt must be a finite number > 0"),
    ("dt", "0.2", "dt must be a finite number > 0")])
def test_damaged_step_metadata_is_refused(stride2_model, tmp_path, key, value, match):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(stride2_model, copy)
    path = copy / "byai_model.json"
    meta = json.loads(path.read_text())
    meta[key] = value
    path.write_text(json.dumps(meta))
    with pytest.raises(surrogates.CheckpointError, match=match):
        surrogates.load(copy)


def test_window_stepper_is_the_model_on_the_stacked_window():
    """A model taking 2 frames of 2 channels: the stepper's next state is the model applied to the window stacked
    frame-major along channels (as the loader stacks it), in normalised units; the window shifts by one."""
    mc = surrogates.ModelConfig(kind="fno", width=4, modes=(4,), depth=1)
    model = surrogates.build_model(mc, ndim=1, channels=2, input_steps=2, num_params=0, seed=1)
    stats = datasets.Normalization(np.array([0.3, -1.0]), np.array([2.0, 0.5]))
    step = surrogates.as_stepper(model, stats)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 16, 2))
    got = np.asarray(step(jnp.asarray(w)))
    assert got.shape == w.shape and got.dtype == np.float64
    np.testing.assert_array_equal(got[0], w[1])
    x = np.concatenate([(w[0] - stats.mean) / stats.std, (w[1] - stats.mean) / stats.std], axis=-1)  # j*C + c
    y = np.asarray(model(jnp.asarray(x[None], jnp.float32)))[0].astype(np.float64) * stats.std + stats.mean
    np.testing.assert_allclose(got[1], y, rtol=1e-6, atol=1e-6)
    # a window in the other order is another input: the order matters, so the test above can fail
    assert not np.allclose(np.asarray(step(jnp.asarray(w[::-1])))[1], y, atol=1e-3)
    with pytest.raises(ValueError, match=r"state is a window of the last 2 states \(2, \*space, 2\)"):
        step(jnp.asarray(w[0]))
