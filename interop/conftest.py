"""Fixtures that start the broker under test.

The target is chosen with the environment variable INTEROP_BROKER:

* ``petrel`` (default): the binary named by PETREL_BIN, or
  ``.build/debug/petrel`` relative to the repository root.
* ``mosquitto``: the ``mosquitto`` executable on PATH (or MOSQUITTO_BIN),
  configured through a generated configuration file.

Every broker is bound to 127.0.0.1 on a free port, every wait is bounded and
every process started here is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

REPO_ROOT = HERE.parent
TARGET = os.environ.get("INTEROP_BROKER", "petrel").strip().lower()
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# Option name -> Petrel command-line flag.  A value of True for a flag option
# emits the bare flag.
PETREL_FLAGS = {
    "max_packet_size": "--max-packet-size",
    "receive_maximum": "--receive-maximum",
    "max_inflight": "--max-inflight",
    "max_queued_messages": "--max-queued-messages",
    "max_queued_bytes": "--max-queued-bytes",
    "queue_qos0": "--queue-qos0",
    "connect_timeout": "--connect-timeout",
    "server_keep_alive": "--server-keep-alive",
    "max_session_expiry": "--max-session-expiry",
    "log_level": "--log-level",
    "shared_subscription_strategy": "--shared-subscription-strategy",
    "topic_alias_maximum": "--topic-alias-maximum",
    "max_topic_levels": "--max-topic-levels",
    "response_information": "--response-information",
    "server_reference": "--server-reference",
    "redirect": "--redirect",
    "hibernate_after": "--hibernate-after",
    "acl_file": "--acl-file",
}

# Option name -> function producing Mosquitto configuration lines.  Options not
# listed here have no Mosquitto equivalent: a test that needs them is skipped
# when running against Mosquitto.
MOSQUITTO_CONFIG = {
    "max_packet_size": lambda v: [f"max_packet_size {v}"],
    "max_inflight": lambda v: [f"max_inflight_messages {v}"],
    "receive_maximum": lambda v: [f"max_inflight_messages {v}"],
    "max_queued_messages": lambda v: [f"max_queued_messages {v}"],
    "max_queued_bytes": lambda v: [f"max_queued_bytes {v}"],
    "queue_qos0": lambda v: [f"queue_qos0_messages {'true' if v else 'false'}"],
    "log_level": lambda v: [],
    "acl_file": lambda v: [f"acl_file {v}"],
}


def is_petrel() -> bool:
    return TARGET == "petrel"


def is_mosquitto() -> bool:
    return TARGET == "mosquitto"


def petrel_only(reason: str = "Petrel-specific behaviour"):
    return pytest.mark.skipif(not is_petrel(), reason=f"Petrel only: {reason}")


def petrel_binary() -> Path:
    env = os.environ.get("PETREL_BIN")
    path = Path(env) if env else REPO_ROOT / ".build" / "debug" / "petrel"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def petrel_release_binary() -> Path:
    """The binary that hostile input is sent to: PETREL_RELEASE_BIN, the optimised build that users run
    (`PETREL_TEST_RELEASE=1 scripts/test.sh` builds and names it), whose stack frames and inlining differ from the
    debug build's; without it, the PETREL_BIN build."""
    env = os.environ.get("PETREL_RELEASE_BIN")
    if not env:
        return petrel_binary()
    path = Path(env)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """A running broker process."""

    def __init__(self, kind: str, args: list[str], port: int, log_path: Path,
                 options: dict, workdir: Path):
        self.kind = kind
        self.args = args
        self.host = HOST
        self.port = port
        self.log_path = log_path
        self.options = options
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self._log_file = None

    def __repr__(self) -> str:
        return f"<Broker {self.kind} {self.host}:{self.port} pid={self.pid}>"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self) -> "Broker":
        out_path = self.log_path if self.kind == "petrel" else self.workdir / "stdout.log"
        self._log_file = open(out_path, "wb")
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
        )
        _RUNNING.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._cleanup()
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            if port_accepts(self.port):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.kind} did not accept connections on {self.port} "
                           f"within {START_TIMEOUT}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Send `sig`, wait (bounded) and return the exit code (None if it had
        to be killed)."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.returncode = None
        else:
            self.returncode = self.proc.returncode
        self._cleanup()
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._cleanup()

    def _cleanup(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, limit: int = 8000) -> str:
        text = self.log_text()
        return text[-limit:]

    def rss_kib(self) -> int:
        """Resident set size of the broker process in KiB (Linux)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("VmRSS not found")


_RUNNING: list[Broker] = []


def unsupported_options(options: dict) -> list[str]:
    if is_petrel():
        return [k for k in options if k not in PETREL_FLAGS]
    return [k for k in options if k not in MOSQUITTO_CONFIG]


def build_broker(workdir: Path, options: dict, extra_args: Optional[list[str]] = None,
                 binary_path: Optional[Path] = None) -> Broker:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "broker.log"
    if is_petrel():
        binary = binary_path or petrel_binary()
        if not binary.exists():
            pytest.fail(f"Petrel binary not found at {binary} (set PETREL_BIN or run "
                        f"`swift build`; INTEROP_BROKER=mosquitto runs against Mosquitto)")
        args = [str(binary), "serve", "--host", HOST, "--port", str(port)]
        for key, value in options.items():
            flag = PETREL_FLAGS[key]
            if value is True:
                args.append(flag)
            elif value is False or value is None:
                continue
            else:
                args += [flag, str(value)]
        args += extra_args or []
        if "--data-dir" not in args and "--storage" not in args:
            # Each broker keeps its state in its own directory, so tests never see each other's sessions or
            # retained messages, and nothing is written into the working directory.
            args += ["--data-dir", str(workdir / "data")]
    elif is_mosquitto():
        binary = os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto") \
            or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if not binary:
            pytest.fail("mosquitto not found (apt-get install mosquitto)")
        lines = [
            f"listener {port} {HOST}",
            "allow_anonymous true",
            # stay the current user (as root Mosquitto would switch to the
            # 'mosquitto' user and could not write the log in the tmp dir)
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "persistence false",
            f"log_dest file {log_path}",
            "log_type all",
            "connection_messages true",
            "max_keepalive 65535",
        ]
        for key, value in options.items():
            lines += MOSQUITTO_CONFIG[key](value)
        conf = workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        args = [binary, "-c", str(conf)]
    else:
        pytest.fail(f"unknown INTEROP_BROKER={TARGET!r} (petrel or mosquitto)")
    return Broker(TARGET, args, port, log_path, dict(options), workdir)


def finish(broker: Broker) -> None:
    """Stop a broker and check a clean exit (Petrel must exit 0 on SIGTERM)."""
    was_alive = broker.alive()
    code = broker.stop()
    if is_petrel():
        assert was_alive, f"petrel died during the test:\n{broker.log_tail()}"
        assert code == 0, f"petrel exited with {code} after SIGTERM:\n{broker.log_tail()}"


@pytest.fixture(scope="session")
def target() -> str:
    return TARGET


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A broker with default options, shared by the tests of one module."""
    b = build_broker(tmp_path_factory.mktemp("broker"), {}).start()
    yield b
    finish(b)


@pytest.fixture
def broker_factory(tmp_path):
    """Start a broker with options: ``broker_factory(max_packet_size=100)``.
    Skips the test when an option has no equivalent on the target broker."""
    started: list[Broker] = []

    def factory(**options) -> Broker:
        missing = unsupported_options(options)
        if missing:
            pytest.skip(f"{TARGET} has no equivalent for option(s) {', '.join(missing)}")
        b = build_broker(tmp_path / f"broker{len(started)}", options).start()
        started.append(b)
        return b

    yield factory
    errors = []
    for b in started:
        try:
            finish(b)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def fresh_broker(broker_factory):
    """A broker with default options, private to one test."""
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _RUNNING:
        for b in list(_RUNNING):
            report.sections.append((f"broker log {b.kind}:{b.port} ({b.log_path})", b.log_tail()))


def pytest_sessionfinish(session, exitstatus):
    """Safety net: no broker outlives the test session."""
    for b in list(_RUNNING):
        b.kill()


def pytest_report_header(config):
    if is_petrel():
        return f"interop target: petrel ({petrel_binary()})"
    return f"interop target: {TARGET}"
