"""Harness of the browser end-to-end call (docs/janus.md, "Browser end-to-end test").

This pytest process stays on the host. It prepares what the run needs and
starts tests/e2e/browser_call.py inside a fresh network namespace, where
127.0.0.1 sits on a veth interface so that Janus gathers ICE candidates:

- ``e2e_netns``: ``scripts/netns.sh up rbe2e<pid>``; at the end every process
  still in the namespace (only what the script started) is stopped, then
  the namespace is deleted;
- ``e2e_database``: a fresh PostgreSQL database ``remotebank_e2e_<pid>``
  (created and dropped over the Unix socket, the only way in from the
  namespace), dropped WITH (FORCE) at the end, also after a failure;
- ``browser_call``: runs the script with a clean environment (local settings,
  that database, random Janus secrets, a temporary var folder) and returns
  its JSON report.

Under CI=true the test must run: a missing piece (root, iproute2, janus,
janus-pp-rec, chromium, playwright, PostgreSQL's socket) fails it with the
reason. Elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "e2e" / "browser_call.py"
NETNS_SCRIPT = ROOT / "scripts" / "netns.sh"
CHROMIUM = Path("/usr/bin/chromium")
PG_SOCKET_DIR = Path("/var/run/postgresql")
# A fresh namespace has no other listeners: fixed ports cannot collide.
DAPHNE_PORT, JANUS_PORT, JANUS_ADMIN_PORT = 8000, 8188, 7088
# The script's own steps take 80-120 s here (post-processing and playback included); this is the hard stop.
RUN_TIMEOUT_SECONDS = 210


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true requires the browser end-to-end call to run, but {reason}", pytrace=False)
    pytest.skip(reason)


def _check_requirements() -> None:
    if sys.platform != "linux" or shutil.which("ip") is None:
        _unavailable("this is not Linux with iproute2 (`ip`)")
    if os.geteuid() != 0:
        _unavailable("creating a network namespace needs root")
    for tool, package in (("janus", "janus"), ("janus-pp-rec", "janus-tools")):
        if shutil.which(tool) is None:
            _unavailable(f"`{tool}` is not installed (apt-get install --no-install-recommends {package})")
    if not CHROMIUM.exists():
        _unavailable("Debian's chromium is not installed (apt-get install --no-install-recommends chromium)")
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (pip install -r requirements/browser.txt)")
    if not PG_SOCKET_DIR.is_dir():
        _unavailable(f"PostgreSQL's Unix socket folder {PG_SOCKET_DIR} is missing")


def _netns_pids(name: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(pid) for pid in listed.stdout.split() if pid.isdigit()]


def _stop_pids(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.1)


@pytest.fixture
def e2e_netns() -> Iterator[str]:
    _check_requirements()
    name = f"rbe2e{os.getpid()}"
    created = subprocess.run(["bash", str(NETNS_SCRIPT), "up", name], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        _unavailable(f"scripts/netns.sh up {name} failed: {created.stderr or created.stdout}")
    try:
        yield name
    finally:
        # Only what browser_call.py started can be in this namespace.
        _stop_pids(_netns_pids(name))
        subprocess.run(["bash", str(NETNS_SCRIPT), "down", name], capture_output=True, check=False)


def _postgres_admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(host=str(PG_SOCKET_DIR), user="postgres", dbname="postgres", autocommit=True)
    except psycopg.Error as exc:
        _unavailable(f"PostgreSQL is not reachable through {PG_SOCKET_DIR}: {exc}")
        raise  # not reached: _unavailable skips or fails


@pytest.fixture
def e2e_database() -> Iterator[str]:
    from psycopg import sql

    name = f"remotebank_e2e_{os.getpid()}"
    statement_drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with _postgres_admin() as admin:
        admin.execute(statement_drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with _postgres_admin() as admin:
            admin.execute(statement_drop)


@dataclass
class BrowserCallRun:
    report: dict[str, Any]
    returncode: int
    seconds: float
    workdir: Path
    shots: Path
    stderr: str

    def explain(self) -> str:
        report = self.report
        lines = [
            f"browser_call.py exited {self.returncode} after {self.seconds:.1f} s at step {report.get('step')!r}",
            str(report.get("error", "")),
            str(report.get("traceback", "")),
        ]
        for name, tail in (report.get("log_tails") or {}).items():
            lines += [f"--- {name} log ---", tail]
        if report.get("console"):
            lines += ["--- browser console ---", json.dumps(report["console"], ensure_ascii=False, indent=1)]
        lines += ["--- stderr ---", self.stderr[-3000:]]
        return "\n".join(lines)


def _script_environment(database: str, workdir: Path) -> dict[str, str]:
    """The host's environment minus every setting of this test run, plus the e2e run's own."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REMOTEBANK_", "DJANGO_", "PYTEST_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "CI", "PYTHONPATH")
    }
    base_url = f"http://127.0.0.1:{DAPHNE_PORT}"
    return inherited | {
        "DJANGO_SETTINGS_MODULE": "remotebank.settings.local",
        # Inside the namespace PostgreSQL is reachable through its socket only.
        "DATABASE_URL": f"postgres://postgres@/{database}?host={PG_SOCKET_DIR}",
        # Unset REDIS_URL: in-memory channel layer and eager Celery inside the one Daphne.
        "REMOTEBANK_VAR_DIR": str(workdir / "var"),
        # The SMS sandbox's random failures are tested in tests/verification; here they would only flake.
        "REMOTEBANK_SMS_SANDBOX_ERROR_RATE": "0",
        "REMOTEBANK_DEBUG": "false",
        "REMOTEBANK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REMOTEBANK_JANUS_NAME": "e2e-janus",
        "REMOTEBANK_JANUS_WS_URL": f"ws://127.0.0.1:{JANUS_PORT}",
        "REMOTEBANK_JANUS_ADMIN_API_URL": f"ws://127.0.0.1:{JANUS_ADMIN_PORT}",
        "REMOTEBANK_JANUS_API_SECRET": secrets.token_urlsafe(24),
        "REMOTEBANK_JANUS_ADMIN_SECRET": secrets.token_urlsafe(24),
        "REMOTEBANK_JANUS_ADMIN_KEY": secrets.token_urlsafe(24),
        "REMOTEBANK_JANUS_TOKEN_SECRET": secrets.token_urlsafe(24),
        "REMOTEBANK_JANUS_EVENTS_URL": f"{base_url}/api/calls/janus-events/",
        "REMOTEBANK_JANUS_EVENTS_SECRET": secrets.token_urlsafe(24),
        "REMOTEBANK_JANUS_RTP_PORT_RANGE": "40000-40999",
        "REMOTEBANK_JANUS_RUN_DIR": str(workdir / "janus"),
        "REMOTEBANK_JANUS_RECORDINGS_DIR": str(workdir / "recordings"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def browser_call(e2e_netns: str, e2e_database: str, tmp_path: Path) -> Callable[..., BrowserCallRun]:
    """Run browser_call.py in the namespace (once) and return its report."""

    def run(scenario: str = "call") -> BrowserCallRun:
        workdir, shots, out = tmp_path / "work", tmp_path / "screenshots", tmp_path / "report.json"
        workdir.mkdir()
        command = [
            "ip", "netns", "exec", e2e_netns, sys.executable, str(SCRIPT),
            "--work-dir", str(workdir), "--json-out", str(out), "--shots-dir", str(shots),
            "--port", str(DAPHNE_PORT), "--janus-port", str(JANUS_PORT), "--scenario", scenario,
        ]  # fmt: skip
        started = time.monotonic()
        with (tmp_path / "stdout.txt").open("wb") as stdout, (tmp_path / "stderr.txt").open("wb") as stderr:
            # Own process group: on timeout the script, Daphne, Janus and Chromium are stopped together.
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=_script_environment(e2e_database, workdir),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                returncode = process.wait(timeout=RUN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
                returncode = -1
        seconds = time.monotonic() - started
        error_text = (tmp_path / "stderr.txt").read_text(errors="replace")
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            report = {"ok": False, "error": f"no JSON report (exit {returncode})"}
        if returncode == -1:
            report["error"] = f"stopped after {RUN_TIMEOUT_SECONDS} s; " + str(report.get("error", ""))
        return BrowserCallRun(report, returncode, seconds, workdir, shots, error_text)

    return run
