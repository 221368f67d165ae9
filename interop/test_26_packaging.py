"""The packaging in deploy/: systemd accepts petrel.service as it is (systemd-analyze verify), and the command
line that petrel.default gives it starts a broker that serves MQTT and /ready."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HOST, REPO_ROOT, Broker, free_port, is_petrel, petrel_binary
from helpers import curl, wait_until

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's packaging")

DEPLOY = REPO_ROOT / "deploy"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "petrel.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "StateDirectory=petrel" in unit
    # systemd checks that ExecStart names an executable: point it at the binary under test.
    local = tmp_path / "petrel.service"
    local.write_text(unit.replace("/usr/local/bin/petrel", str(petrel_binary())))
    done = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def default_options() -> list[str]:
    for line in (DEPLOY / "petrel.default").read_text().splitlines():
        if line.startswith("PETREL_OPTIONS="):
            return shlex.split(shlex.split(line.partition("=")[2])[0])
    raise AssertionError("petrel.default sets no PETREL_OPTIONS")


def test_the_default_command_line_starts_a_broker(tmp_path):
    options = default_options()
    assert options[options.index("--host") + 1] == "0.0.0.0"
    # Here every listener stays on the loopback interface, on free ports.
    mqtt_port, http_port = free_port(), free_port()
    options[options.index("--host") + 1] = HOST
    options[options.index("--http") + 1] = f"{HOST}:{http_port}"
    args = [str(petrel_binary()), "serve", "--data-dir", str(tmp_path / "data"), *options, "--port", str(mqtt_port)]
    broker = Broker("petrel", args, mqtt_port, tmp_path / "broker.log", {}, tmp_path).start()
    try:
        assert wait_until(lambda: curl(http_port, "/ready") == (200, "ready"), 10), broker.log_tail()
        subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(mqtt_port), "-t", "t", "-m", "m"], check=True, timeout=10)
    finally:
        assert broker.stop() == 0, broker.log_tail()
