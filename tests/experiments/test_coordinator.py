"""A multi-host coordinator that cannot be reached: the process says what it waits for (address, process id,
timeout) and gives up with one line after ``train.coordinator_timeout`` seconds; ``byai generate`` and
``byai run`` join the processes with the same settings as ``byai train``."""

import socket
import time

import pytest

from experiments._cli import main
from experiments._config import LaunchSettings
from experiments._toml import ConfigError

from .conftest import byai, env_without_coordinator


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_with_coordinator(tmp_path, tiny_run, port: int, timeout: int = 2):
    config, _ = tiny_run
    text = config.read_text().replace("[train]\n", f"""[train]
coordinator_address = "127.0.0.1:{port}"
num_processes = 2
process_id = 1
coordinator_timeout = {timeout}
""")
    path = tmp_path / "coordinated.toml"
    path.write_text(text)
    return path


def check_gave_up(err: str, verb: str, port: int) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-2] == (f"byai: process 1 of 2: waiting for the coordinator at 127.0.0.1:{port}, for up to 2 s "
                         "(train.coordinator_timeout)")
    assert lines[-1].startswith(f"byai {verb}: error: process 1 of 2 could not reach the coordinator at "
                                f"127.0.0.1:{port} within 2 s (")
    assert lines[-1].endswith("start process 0 first, check the address and port, or raise train.coordinator_timeout")


@pytest.mark.slow
def test_train_gives_up_on_an_unreachable_coordinator_in_one_line(tmp_path, tiny_run):
    _, reference = tiny_run
    port = unused_port()
    config = config_with_coordinator(tmp_path, tiny_run, port)
    t0 = time.monotonic()
    r = byai("train", config, "--data", reference / "data", "--out", tmp_path / "model", "--quiet", timeout=120,
             env=env_without_coordinator())
    assert r.returncode == 2, r.stderr
    check_gave_up(r.stderr, "train", port)
    assert time.monotonic() - t0 < 60  # the stated timeout, not jax's 300 s and a native abort
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["generate", "run"])
def test_generate_and_run_join_with_the_train_settings(tmp_path, tiny_run, capsys, verb, monkeypatch):
    for key in ("BYAI_COORDINATOR", "BYAI_NUM_PROCESSES", "BYAI_PROCESS_ID"):
        monkeypatch.delenv(key, raising=False)
    port = unused_port()
    config = config_with_coordinator(tmp_path, tiny_run, port)
    out = tmp_path / "out"
    assert main([verb, str(config), "--out", str(out), "--quiet"]) == 2
    check_gave_up(capsys.readouterr().err, verb, port)
    assert not out.exists() or not any(out.iterdir())


def test_coordinator_timeout_is_validated(tmp_path):
    from experiments._config import load

    path = tmp_path / "c.toml"
    path.write_text("[train]\ncoordinator_timeout = 0\n")
    with pytest.raises(ConfigError, match=r"train.coordinator_timeout: must be >= 1 \(seconds\), got 0"):
        load(path)
    path.write_text("[train]\ncoordinator_timeout = 5\n")
    assert load(path).run_settings("train") == LaunchSettings(coordinator_timeout=5)
