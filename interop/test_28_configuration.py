"""Configuration files: `petrel config check` points at each problem by line and key, a file with every key
starts the broker, PETREL_<KEY> overrides the file and flags override both, and `petrel config from-mosquitto`
turns Debian's mosquitto.conf and a fuller one into files Petrel runs with."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HOST, REPO_ROOT, Broker, free_port, is_petrel, petrel_binary
from helpers import curl, wait_until
from tls_certs import make_pki

pytestmark = pytest.mark.skipif(not is_petrel(), reason="Petrel's configuration files")

DEBIAN_MOSQUITTO_CONF = Path("/etc/mosquitto/mosquitto.conf")


def petrel(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(petrel_binary()), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def every_key() -> set[str]:
    """One key per option of `petrel serve`, as its own description of itself lists them."""
    dump = json.loads(petrel("serve", "--experimental-dump-help").stdout)
    names = {name["name"] for argument in dump["command"]["arguments"] for name in argument.get("names", [])
             if name["kind"] == "long"}
    keys = {name for name in names if not (name.startswith("no-") and name[3:] in names)}
    assert keys >= {"max-inflight", "listen", "allow-anonymous"}
    # Every key is in the example file too.
    example = petrel("config", "example").stdout
    assert all(f"# {key}: " in example for key in keys - {"config", "help", "version"})
    return keys - {"config", "help", "version"}


def serve_checked(tmp_path: Path, config: Path, port: int) -> Broker:
    """`petrel config check` accepts the file, and a broker started from it (on `port`, which the file names)."""
    check = petrel("config", "check", str(config))
    assert check.returncode == 0, check.stdout
    broker = Broker("petrel", [str(petrel_binary()), "serve", "--config", str(config)], port,
                    tmp_path / "broker.log", {}, tmp_path)
    return broker.start()


def test_check_names_each_problem_with_its_line_and_key(tmp_path):
    bad = tmp_path / "petrel.yaml"
    bad.write_text(
        "max-inflight: 64\n"            # 1: fine
        "max-inflite: 64\n"             # 2: a typo is an unknown key, not ignored
        "max-queued-messages: lots\n"   # 3: not a number
        "storage: floppy\n"             # 4: not a storage kind
        "listeners:\n"                  # 5
        "  - {transport: mqtt, port: 1883}\n"
        "  - {transport: carrier-pigeon, port: 1}\n"  # 7
        "  - {transport: ws, port: 8080, colour: blue}\n"  # 8
    )
    done = petrel("config", "check", str(bad))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert f"{bad}:2: max-inflite: unknown key" in lines
    assert any(line.startswith(f"{bad}:3: max-queued-messages: ") and "lots" in line for line in lines)
    assert any(line.startswith(f"{bad}:4: storage: 'floppy' is not one of") for line in lines)
    assert any(line.startswith(f"{bad}:7: listeners[1].transport: ") for line in lines)
    assert any(line.startswith(f"{bad}:8: listeners[2].colour: unknown key") for line in lines)
    assert len(lines) == 5, done.stdout
    # serve refuses it the same way, before it starts.
    refused = petrel("serve", "--config", str(bad))
    assert refused.returncode == 2 and "max-inflite: unknown key" in refused.stderr
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("max-inflight: [1, 2\n")
    done = petrel("config", "check", str(not_yaml))
    assert done.returncode == 1 and done.stdout.startswith(f"{not_yaml}:")
    json_file = tmp_path / "petrel.json"
    json_file.write_text('{"max-inflight": 64, "listeners": [{"transport": "mqtt", "host": "127.0.0.1", "port": 1883}]}')
    assert petrel("config", "check", str(json_file)).returncode == 0


def test_a_file_with_every_key_starts_the_broker(tmp_path):
    pki = make_pki(tmp_path / "pki")
    passwords = tmp_path / "passwords"
    subprocess.run([str(petrel_binary()), "passwd", str(passwords), "alice", "--password", "wonderland"],
                   check=True, timeout=30)
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite #\n")
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    token = tmp_path / "admin-token"
    token.write_text("s3cret-admin-token\n")
    mqtt_port, mqtts_port, ws_port, http_port = free_port(), free_port(), free_port(), free_port()
    values = {
        "listen": f"[mqtt://{HOST}:{free_port()}]",
        "host": f"[{HOST}]",
        "port": mqtt_port,
        "tls-cert": pki.server.cert, "tls-key": pki.server.key, "tls-ca": pki.ca,
        "tls-require-client-cert": "false", "tls-use-identity-as-username": "false",
        "tls-min-version": '"1.2"', "tls-ciphers": "HIGH:!aNULL",
        "max-packet-size": 1048576, "receive-maximum": 512, "max-inflight": 20, "max-queued-messages": 500,
        "max-queued-bytes": 8388608, "queue-qos0": "true", "connect-timeout": 5, "server-keep-alive": 120,
        "max-keep-alive": 300, "max-session-expiry": 86400, "shared-subscription-strategy": "random",
        "max-topic-levels": 64, "max-topic-length": 1024, "max-subscriptions": 100, "max-publish-rate": 1000,
        "max-queued-memory": 67108864, "max-connections": 100, "max-connections-per-address": 50,
        "topic-alias-maximum": 8, "response-information": "responses", "server-reference": '""',
        "redirect": "moved", "password-file": passwords, "allow-anonymous": "false",
        "jwt-jwks": jwks, "jwt-audience": "petrel",
        "http-acl-url": f"http://{HOST}:{free_port()}/acl", "http-timeout": 1, "http-cache-seconds": 5,
        "http-cache-size": 100, "http-header": '["X-Petrel: test"]', "max-login-delay": 0, "acl-file": acl,
        "hibernate-after": 0, "sys-interval": 5, "threads": 2, "log-level": "info", "log-format": "text",
        "data-dir": tmp_path / "data", "storage": "sqlite", "durability": "sync", "commit-interval-ms": 3,
        "commit-batch": 500, "max-retained-messages": 1000, "max-retained-bytes": 1048576,
        "max-database-size": 1073741824, "http": f"{HOST}:{http_port}", "admin-token-file": token,
    }
    # The other way to decide CONNECTs, which cannot go with jwt-jwks; and where every client is sent away.
    exclusive = {"jwt-key", "http-auth-url", "server-reference"}
    values.pop("server-reference")
    assert set(values) | exclusive == every_key(), "a new option needs a value here"
    lines = [f"{key}: {value}" for key, value in values.items()]
    lines.append(f"listeners: [{{transport: mqtts, host: {HOST}, port: {mqtts_port}}}, "
                 f"{{transport: ws, host: {HOST}, port: {ws_port}, path: /mqtt}}]")
    config = tmp_path / "petrel.yaml"
    config.write_text("\n".join(lines) + "\n")
    broker = serve_checked(tmp_path, config, mqtt_port)
    try:
        assert wait_until(lambda: curl(http_port, "/ready") == (200, "ready"), 10), broker.log_tail()
        log = broker.log_text()
        for url in (f"mqtts://{HOST}:{mqtts_port}", f"ws://{HOST}:{ws_port}/mqtt", f"mqtt://{HOST}:{mqtt_port}"):
            assert url in log, log
        # CONNECTs are decided by the JWKS file (which holds no key): a password is refused, and answered.
        refused = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(mqtt_port), "-u", "alice", "-P", "wonderland",
                                  "-t", "t", "-m", "m"], capture_output=True, text=True, timeout=10)
        assert refused.returncode != 0 and "bad user name or password" in refused.stderr.lower()
        # The admin API shows every key the file set, and no secret.
        shown = subprocess.run(["curl", "-s", "-H", "Authorization: Bearer s3cret-admin-token",
                                f"http://{HOST}:{http_port}/api/v1/config"], capture_output=True, text=True, timeout=10)
        effective = json.loads(shown.stdout)
        names = set()
        pending = [effective]
        while pending:
            node = pending.pop()
            for name, value in node.items():
                names.add(name)
                if isinstance(value, dict):
                    pending.append(value)
        renamed = {"log-level": "log_level_at_start"}
        missing = [key for key in values if renamed.get(key, key.replace("-", "_")) not in names]
        assert missing == [], f"GET /api/v1/config leaves out {missing}"
        assert "X-Petrel: ***" in shown.stdout and "s3cret-admin-token" not in shown.stdout
    finally:
        assert broker.stop() == 0, broker.log_tail()


def test_environment_over_file_and_flags_over_both(tmp_path):
    config = tmp_path / "petrel.yaml"
    config.write_text("max-inflight: 64\nmax-queued-messages: 10\nhost: [127.0.0.1]\nallow-anonymous: true\n")
    shown = petrel("config", "show", "--config", str(config), "--max-queued-messages", "30", "--no-allow-anonymous",
                   env={"PETREL_MAX_INFLIGHT": "5", "PETREL_MAX_QUEUED_MESSAGES": "20", "PETREL_THREADS": "1"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    effective = dict(line.split(": ", 1) for line in shown.stdout.splitlines())
    assert effective["max-inflight"] == "5"          # the environment over the file
    assert effective["max-queued-messages"] == "30"  # the flag over both
    assert effective["threads"] == "1"               # the environment alone
    assert effective["allow-anonymous"] == "false"
    assert effective["host"] == "[127.0.0.1]"
    # The port of a running broker comes from PETREL_PORT when the file says another.
    port = free_port()
    config.write_text(f"host: [{HOST}]\nport: {free_port()}\nstorage: memory\n")
    broker = Broker("petrel", [str(petrel_binary()), "serve"], port, tmp_path / "broker.log", {}, tmp_path)
    os.environ["PETREL_CONFIG"] = str(config)
    os.environ["PETREL_PORT"] = str(port)
    try:
        broker.start()
    finally:
        del os.environ["PETREL_CONFIG"], os.environ["PETREL_PORT"]
    assert broker.stop() == 0


def test_from_mosquitto_on_debians_file(tmp_path):
    if not DEBIAN_MOSQUITTO_CONF.exists():
        pytest.skip("Debian's mosquitto package is not installed")
    done = petrel("config", "from-mosquitto", str(DEBIAN_MOSQUITTO_CONF), "--output", str(tmp_path / "petrel.yaml"))
    assert done.returncode == 0
    converted = (tmp_path / "petrel.yaml").read_text()
    assert "storage: sqlite" in converted and "data-dir: /var/lib/mosquitto/" in converted
    # What has no counterpart is named, with its line, in the file and on standard error.
    for directive in ("pid_file", "log_dest", "include_dir"):
        assert re.search(rf"#   line \d+: {directive} ", converted), converted
        assert f"not converted: {directive}" in done.stderr
    assert petrel("config", "check", str(tmp_path / "petrel.yaml")).returncode == 0


def test_from_mosquitto_listeners_tls_auth_and_limits_run(tmp_path):
    pki = make_pki(tmp_path / "pki")
    passwords = tmp_path / "passwords"
    subprocess.run([str(petrel_binary()), "passwd", str(passwords), "alice", "--password", "wonderland",
                    "--format", "mosquitto"], check=True, timeout=30)
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite #\n")
    plain, secure, ws = free_port(), free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join([
        "# a broker for the test", "per_listener_settings false",
        f"listener {plain} {HOST}",
        f"listener {secure} {HOST}", f"cafile {pki.ca}", f"certfile {pki.server.cert}", f"keyfile {pki.server.key}",
        "require_certificate false",
        f"listener {ws} {HOST}", "protocol websockets",
        f"password_file {passwords}", f"acl_file {acl}", "allow_anonymous false",
        "max_inflight_messages 10", "max_queued_messages 200", "persistence false", "message_size_limit 65536",
        "sys_interval 5", "log_type all",
    ]) + "\n")
    out = tmp_path / "petrel.yaml"
    done = petrel("config", "from-mosquitto", str(conf), "--output", str(out))
    assert done.returncode == 0
    assert "not converted: per_listener_settings" in done.stderr and "not converted: log_type" in done.stderr
    text = out.read_text()
    assert f"{{transport: mqtts, host: {HOST}, port: {secure}}}" in text
    assert f"{{transport: ws, host: {HOST}, port: {ws}, path: /mqtt}}" in text
    assert "max-inflight: 10" in text and "storage: memory" in text and "allow-anonymous: false" in text
    broker = serve_checked(tmp_path, out, plain)
    try:
        ok = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(plain), "-u", "alice", "-P", "wonderland",
                             "-t", "t", "-m", "m"], capture_output=True, timeout=10)
        assert ok.returncode == 0, ok.stderr
        anonymous = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(plain), "-t", "t", "-m", "m"],
                                   capture_output=True, timeout=10)
        assert anonymous.returncode != 0
        tls = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(secure), "--cafile", str(pki.ca),
                              "-u", "alice", "-P", "wonderland", "-t", "t", "-m", "m"], capture_output=True, timeout=10)
        assert tls.returncode == 0, tls.stderr
    finally:
        assert broker.stop() == 0, broker.log_tail()


def test_the_documented_example_is_the_one_petrel_prints():
    documented = (REPO_ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert petrel("config", "example").stdout in documented, "docs/CONFIGURATION.md: paste `petrel config example`"


def test_sighup_rereads_the_file(tmp_path):
    config = tmp_path / "petrel.yaml"
    port = free_port()
    config.write_text(f"host: [{HOST}]\nport: {port}\nstorage: memory\nmax-connections: 5\nmax-inflight: 10\n")
    broker = Broker("petrel", [str(petrel_binary()), "serve", "--config", str(config)], port,
                    tmp_path / "broker.log", {}, tmp_path).start()
    try:
        first = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-i", "before", "-t", "t", "-m", "m"],
                               timeout=10)
        assert first.returncode == 0
        assert "before" in broker.log_text()
        config.write_text(f"host: [{HOST}]\nport: {port}\nstorage: memory\nmax-connections: 1\nmax-inflight: 20\n"
                          "log-level: notice\nmax-publish-rate: 3\n")
        broker.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "Reloaded the configuration file" in broker.log_text(), 5), broker.log_tail()
        line = next(l for l in broker.log_text().splitlines() if "Reloaded the configuration file" in l)
        assert "log-level: - -> notice" in line and "max-connections: 5 -> 1" in line
        assert "petrel.restart_needed=max-inflight" in line and "max-publish-rate: - -> 3" in line
        # The new publish rate holds for the next client: 50 messages at once are too many (MQTT 5: 0x96).
        burst = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", "mqttv5", "-i", "burst",
                                "-t", "t", "-l"], input="m\n" * 50, capture_output=True, text=True, timeout=10)
        assert wait_until(lambda: "more than 3 PUBLISH packets per second" in broker.log_text(), 5), burst.stderr
        # At notice, a connection is not logged; one connection at a time is allowed now.
        holder = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(port), "-i", "holder", "-t", "x"])
        try:
            time.sleep(0.5)
            refused = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(port), "-i", "second", "-t", "t",
                                      "-m", "m"], capture_output=True, timeout=10)
            assert refused.returncode != 0
        finally:
            holder.kill()
        assert "holder" not in broker.log_text()
        # A broken file is refused whole; the running settings stay.
        config.write_text("max-connections: many\n")
        broker.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "Reloading the configuration file failed" in broker.log_text(), 5)
    finally:
        assert broker.stop() == 0, broker.log_tail()
