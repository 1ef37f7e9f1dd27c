"""A real Janus for the calls tests, inside a private network namespace.

Janus never gathers ICE candidates on a loopback interface, and 127.0.0.1 is
the only address this machine may use. So the session fixture creates a
network namespace where 127.0.0.1/32 sits on a veth interface (v0)
(scripts/netns.sh), generates a configuration with ``ice_enforce_list = "v0"``
into a temporary folder, and starts Janus inside the namespace.

This test process stays outside and cannot reach Janus: everything that talks
to Janus runs in ``ip netns exec NS python tests/calls/peer.py steps`` and
reports JSON, plus files (recordings, captured events) the tests inspect.

Under CI=true Janus must run: a missing piece fails the tests with the reason.
Elsewhere they skip when Janus or root is not available.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.calls.integrations.janus import JanusServer, janus_session_token, janus_token
from apps.calls.janus_config import JanusConfigOptions, available_modules, debian_janus_lib_dir, write_janus_config
from apps.calls.models import Call
from apps.customers.models import Customer
from apps.queueing.models import AgentState, ServiceQueue
from apps.queueing.services.agents import agent_state_set
from apps.queueing.services.configuration import service_queue_upsert
from apps.queueing.services.entries import queue_entry_enqueue
from apps.queueing.services.offers import offer_accept
from apps.staff.models import StaffProfile
from apps.staff.roles import Role
from apps.staff.services import agent_skill_set, staff_member_upsert
from apps.visits.authentication import SESSION_KEY
from tests.conftest import SYSTEM
from tests.factories import visit_with_gate1

CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "calls" / "peer.py"
NETNS_SCRIPT = ROOT / "scripts" / "netns.sh"
# A fresh namespace has no other listeners: fixed ports cannot collide.
WS_PORT, ADMIN_PORT, EVENTS_PORT = 8188, 7088, 18080


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true requires a real Janus for the calls tests, but {reason}", pytrace=False)
    pytest.skip(reason)


def _wait_for_port(netns: str, port: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["ip", "netns", "exec", netns, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return True
        time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen[Any] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class JanusHarness:
    """A running Janus reachable only inside ``netns``; ``server`` is how the server side talks to it."""

    netns: str
    server: JanusServer
    workdir: Path
    log: Path
    events_file: Path
    startup_seconds: float
    process: subprocess.Popen[bytes]

    @property
    def server_dict(self) -> dict[str, str]:
        return asdict(self.server)

    def session_token(self, *, valid_seconds: int = 600, now: float | None = None) -> str:
        return janus_session_token(self.server, valid_seconds=valid_seconds, now=now)

    def room_token(self, room_id: int, *, valid_seconds: int = 600, now: float | None = None) -> str:
        return janus_token(self.server, room_id=room_id, valid_seconds=valid_seconds, now=now)

    def janus_rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))

    def run(self, steps: list[dict[str, Any]], *, timeout: float = 40) -> list[dict[str, Any]]:
        """Run peer.py steps inside the namespace; one result per step."""
        for step in steps:
            step.setdefault("url", self.server.admin_ws_url)
            step.setdefault("server", self.server_dict)
        completed = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, str(PEER), "steps"],
            input=json.dumps(steps),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"peer.py failed ({completed.returncode}):\n{completed.stderr[-3000:]}\n"
                f"--- janus.log ---\n{self.log_tail()}"
            )
        results: list[dict[str, Any]] = json.loads(completed.stdout)
        return results

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]


@contextmanager
def network_namespace(prefix: str, unavailable: Callable[[str], None] = _unavailable) -> Iterator[str]:
    """A fresh namespace ``<prefix><pid>`` for a Janus and its peers (scripts/netns.sh), removed afterwards."""
    if sys.platform != "linux" or shutil.which("ip") is None:
        unavailable("this is not Linux with iproute2 (`ip`)")
    if os.geteuid() != 0:
        unavailable("creating a network namespace needs root")
    if shutil.which("janus") is None:
        unavailable("`janus` is not installed (apt-get install --no-install-recommends janus janus-tools)")
    name = f"{prefix}{os.getpid()}"
    created = subprocess.run(["bash", str(NETNS_SCRIPT), "up", name], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        unavailable(f"scripts/netns.sh up {name} failed: {created.stderr or created.stdout}")
    try:
        yield name
    finally:
        subprocess.run(["bash", str(NETNS_SCRIPT), "down", name], capture_output=True, check=False)


@pytest.fixture(scope="session")
def janus_netns() -> Iterator[str]:
    with network_namespace("rbtest") as name:
        yield name


@pytest.fixture(scope="session")
def janus(janus_netns: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusHarness]:
    """Janus 1.1.2 started with a generated configuration inside the namespace."""
    workdir = tmp_path_factory.mktemp("janus")
    conf = workdir / "conf"
    server = JanusServer(
        name="test-janus",
        admin_ws_url=f"ws://127.0.0.1:{WS_PORT}",
        public_ws_url=f"ws://127.0.0.1:{WS_PORT}",
        api_secret=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(24),
        token_secret=secrets.token_urlsafe(24),
        admin_secret=secrets.token_urlsafe(24),
        admin_api_url=f"ws://127.0.0.1:{ADMIN_PORT}",
    )
    events_secret = secrets.token_urlsafe(24)
    lib_dir = debian_janus_lib_dir()
    write_janus_config(
        JanusConfigOptions(
            api_secret=server.api_secret,
            admin_secret=server.admin_secret,
            admin_key=server.admin_key,
            token_secret=server.token_secret,
            events_url=f"http://127.0.0.1:{EVENTS_PORT}/api/calls/janus-events/",
            events_secret=events_secret,
            ws_port=WS_PORT,
            admin_port=ADMIN_PORT,
            rtp_port_range="40000-40999",
            ice_enforce_list="v0",
            server_name=server.name,
            lib_dir=lib_dir,
            modules=available_modules(lib_dir),
        ),
        conf,
    )
    events_file = workdir / "events.jsonl"
    collector_log = workdir / "collector.log"
    # The child keeps its own copy of the descriptor; ours is closed at once.
    with collector_log.open("wb") as collector_stderr:
        collector = subprocess.Popen(
            [
                "ip", "netns", "exec", janus_netns, sys.executable, str(PEER), "events",
                "--port", str(EVENTS_PORT), f"--secret={events_secret}", "--out", str(events_file),
            ],
            stdout=subprocess.PIPE,
            stderr=collector_stderr,
            cwd=ROOT,
        )  # fmt: skip
    process: subprocess.Popen[bytes] | None = None
    try:
        assert collector.stdout is not None
        if collector.stdout.readline().strip() != b"ready":
            _unavailable(
                f"the event collector (tests/calls/peer.py events) did not start in {janus_netns}: "
                f"{collector_log.read_text(errors='replace')[-1500:]}"
            )
        log = workdir / "janus.log"
        started = time.monotonic()
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                janus_netns,
                "janus",
                "-F",
                str(conf),
                "-C",
                str(conf / "janus.jcfg"),
                "-o",
                "-N",
                "-L",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o027,
        )
        if not _wait_for_port(janus_netns, WS_PORT, timeout=10):
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            _unavailable(f"Janus did not open its WebSocket port within 10 s:\n{tail}")
        yield JanusHarness(
            netns=janus_netns,
            server=server,
            workdir=workdir,
            log=log,
            events_file=events_file,
            startup_seconds=time.monotonic() - started,
            process=process,
        )
    finally:
        _stop(process)
        _stop(collector)
        if collector.stdout is not None:
            collector.stdout.close()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def janus_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    """A real Janus on this machine's loopback, for the server-side control plane.

    Creating, listing and destroying rooms, tokens and events need no media,
    so the loopback pitfall does not apply: the Django test process talks to
    this Janus directly. Media tests use ``janus`` (in a namespace) instead.
    """
    if shutil.which("janus") is None:
        _unavailable("`janus` is not installed (apt-get install --no-install-recommends janus janus-tools)")
    workdir = tmp_path_factory.mktemp("janus-control")
    ws_port, admin_port = _free_port(), _free_port()
    server = JanusServer(
        name="control-janus",
        admin_ws_url=f"ws://127.0.0.1:{ws_port}",
        public_ws_url=f"ws://127.0.0.1:{ws_port}",
        api_secret=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(24),
        token_secret=secrets.token_urlsafe(24),
        admin_secret=secrets.token_urlsafe(24),
        admin_api_url=f"ws://127.0.0.1:{admin_port}",
    )
    lib_dir = debian_janus_lib_dir()
    write_janus_config(
        JanusConfigOptions(
            api_secret=server.api_secret,
            admin_secret=server.admin_secret,
            admin_key=server.admin_key,
            token_secret=server.token_secret,
            # Nobody listens there: the event feed is tested by posting to the endpoint.
            events_url=f"http://127.0.0.1:{_free_port()}/api/calls/janus-events/",
            events_secret=secrets.token_urlsafe(24),
            ws_port=ws_port,
            admin_port=admin_port,
            rtp_port_range="41000-41999",
            server_name=server.name,
            lib_dir=lib_dir,
            modules=available_modules(lib_dir),
        ),
        workdir / "conf",
    )
    log = workdir / "janus.log"
    process = subprocess.Popen(
        ["janus", "-F", str(workdir / "conf"), "-C", str(workdir / "conf" / "janus.jcfg"), "-o", "-N", "-L", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o027,
    )
    try:
        import socket

        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", ws_port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    _unavailable(
                        f"Janus did not open port {ws_port}: {log.read_text(errors='replace')[-1500:] if log.exists() else ''}"
                    )
                time.sleep(0.05)
        yield server
    finally:
        _stop(process)


@pytest.fixture
def janus_settings(settings: Any, janus_control: JanusServer, tmp_path: Path) -> JanusServer:
    """Point the platform at the control-plane Janus for one test."""
    settings.JANUS_SERVERS = [
        {
            "name": janus_control.name,
            "ws_url": janus_control.admin_ws_url,
            "public_ws_url": janus_control.public_ws_url,
            "admin_api_url": janus_control.admin_api_url,
            "api_secret": janus_control.api_secret,
            "admin_secret": janus_control.admin_secret,
            "admin_key": janus_control.admin_key,
            "token_secret": janus_control.token_secret,
        }
    ]
    settings.JANUS_RECORDINGS_DIR = str(tmp_path / "recordings")
    settings.JANUS_EVENTS_SECRET = "test-events-secret"
    return janus_control


# --- A wide-area network: NAT, firewall, TURN, a shaped mobile link -------------------

LINKEM = ROOT / "tests" / "calls" / "linkem.py"
WAN_SERVER_IP = "198.18.0.1"  # scripts/netns.sh wan-up
TURN_PORT = 3478
TURN_TLS_PORT = 5349


def _self_signed_certificate(folder: Path, ip: str) -> tuple[Path, Path]:
    """A throwaway certificate and key for ``ip`` (coturn's TURN over TLS in the test network)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "turn-cert.pem", folder / "turn-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o644)  # coturn drops privileges on some systems; a test-only key
    return cert_path, key_path


@dataclass
class WanHarness:
    """Janus and coturn in ``server_ns``; the customer behind a NAT in ``customer_ns``.

    The customer's link to the router is two TUN devices that nothing joins
    until a test starts :meth:`link` (tests/calls/linkem.py).
    """

    prefix: str
    server_ns: str
    router_ns: str
    customer_ns: str
    server: JanusServer
    turn_secret: str
    workdir: Path
    janus_log: Path
    turn_log: Path
    events_file: Path
    janus_process: subprocess.Popen[bytes]
    turn_process: subprocess.Popen[bytes]
    turn_tls_cert: Path  # self-signed for WAN_SERVER_IP; the peers trust it (SSL_CERT_FILE)

    def session_token(self) -> str:
        return janus_session_token(self.server, valid_seconds=600)

    def room_token(self, room_id: int) -> str:
        return janus_token(self.server, room_id=room_id, valid_seconds=600)

    def ice_servers(self, user: str, *, transport: str = "udp") -> list[dict[str, Any]]:
        """Platform-style TURN credentials; ``transport`` udp, tcp or tls (``turns:``, port 5349)."""
        from apps.calls.integrations.turn import turn_credentials

        url = (
            f"turns:{WAN_SERVER_IP}:{TURN_TLS_PORT}?transport=tcp"
            if transport == "tls"
            else f"turn:{WAN_SERVER_IP}:{TURN_PORT}?transport={transport}"
        )
        credentials = turn_credentials(
            secret=self.turn_secret,
            user=user,
            urls=[url],
            valid_seconds=600,
        )
        return [
            {"urls": list(credentials.urls), "username": credentials.username, "credential": credentials.credential}
        ]

    def firewall(self, mode: str) -> None:
        subprocess.run(["bash", str(NETNS_SCRIPT), "wan-firewall", self.prefix, mode], capture_output=True, check=True)

    @contextmanager
    def link(self, *, delay_ms: float = 0, loss: float = 0, rate_kbit: float = 0) -> Iterator[dict[str, Any]]:
        """Join the customer's link for the duration of the block; yields the emulator's counters afterwards."""
        counters: dict[str, Any] = {}
        process = subprocess.Popen(
            [
                sys.executable, str(LINKEM), "--a", f"{self.customer_ns}:c0", "--b", f"{self.router_ns}:r1",
                "--delay-ms", str(delay_ms), "--loss", str(loss), "--rate-kbit", str(rate_kbit),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise AssertionError(f"linkem.py did not start: {process.stderr.read() if process.stderr else ''}")
            yield counters
        finally:
            _stop(process)
            if process.stdout is not None:
                for line in process.stdout.read().splitlines():
                    if line.startswith("{"):
                        counters.update(json.loads(line))
                process.stdout.close()
            if process.stderr is not None:
                process.stderr.close()

    def browser(self, netns: str, credentials: dict[str, Any], *, seconds: float, stop: Path) -> subprocess.Popen[str]:
        """Start tests/calls/browser_peer.py (headless Chromium, the shared call library) in ``netns``, not waiting.

        The join credentials go in through a file (stdin); the report comes
        out on stdout when ``seconds`` pass or ``stop`` exists.
        """
        import tempfile

        with tempfile.TemporaryFile("w+") as stdin:
            json.dump(credentials, stdin)
            stdin.seek(0)
            return subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, str(ROOT / "tests" / "calls" / "browser_peer.py"),
                 "--seconds", str(seconds), "--stop-file", str(stop)],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )  # fmt: skip

    def start(self, netns: str, steps: list[dict[str, Any]]) -> subprocess.Popen[str]:
        """Start peer.py steps in ``netns`` without waiting (two sides of a call run at once)."""
        for step in steps:
            step.setdefault("url", self.server.admin_ws_url)
            step.setdefault("server", asdict(self.server))
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, str(PEER), "steps"],
            # aioice checks the TURN server's certificate against the default
            # trust store; this one trusts the harness's self-signed coturn.
            env={**os.environ, "SSL_CERT_FILE": str(self.turn_tls_cert)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(steps))
        process.stdin.close()
        process.stdin = None  # communicate() must not flush it again
        return process

    def finish(self, process: subprocess.Popen[str], *, timeout: float = 90) -> list[dict[str, Any]]:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise AssertionError(f"peer.py failed ({process.returncode}):\n{stderr[-3000:]}\n{self.log_tails()}")
        results: list[dict[str, Any]] = json.loads(stdout)
        return results

    def run(self, netns: str, steps: list[dict[str, Any]], *, timeout: float = 60) -> list[dict[str, Any]]:
        return self.finish(self.start(netns, steps), timeout=timeout)

    def log_tails(self, lines: int = 25) -> str:
        tails = []
        for path in (self.janus_log, self.turn_log):
            try:
                text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            except OSError:
                text = "(no log)"
            tails.append(f"--- {path.name} ---\n{text}")
        return "\n".join(tails)

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def wan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WanHarness]:
    """The wide-area network of scripts/netns.sh ``wan-up`` with Janus and coturn (see :func:`wan_network`)."""
    with wan_network(tmp_path_factory.mktemp("wan")) as harness:
        yield harness


@contextmanager
def wan_network(workdir: Path, unavailable: Callable[[str], None] = _unavailable) -> Iterator[WanHarness]:
    """The wide-area network of scripts/netns.sh ``wan-up`` with Janus and coturn on the server.

    coturn listens on 198.18.0.1:3478 (UDP and TCP) with REST API credentials
    only and relays to Janus' address only; Janus binds its WebSockets and
    gathers ICE on s0 (198.18.0.1) and gets the same TURN server, with
    credentials minted like the platform's.
    """
    from apps.calls.integrations.turn import turn_credentials
    from apps.calls.turn_config import TurnConfigOptions, write_turn_config

    if shutil.which("turnserver") is None:
        unavailable("coturn is not installed (apt-get install --no-install-recommends coturn)")
    if shutil.which("iptables") is None:
        unavailable("iptables is not installed (apt-get install --no-install-recommends iptables)")
    if not Path("/dev/net/tun").exists():
        unavailable("/dev/net/tun is missing (the customer's emulated link needs TUN devices)")
    prefix = f"rbwan{os.getpid()}"
    with network_namespace("rbwanprobe", unavailable):
        pass  # root, ip, janus: the same checks as the other media tests
    created = subprocess.run(
        ["bash", str(NETNS_SCRIPT), "wan-up", prefix, "tun"], capture_output=True, text=True, check=False
    )
    if created.returncode != 0:
        subprocess.run(["bash", str(NETNS_SCRIPT), "wan-down", prefix], capture_output=True, check=False)
        unavailable(f"scripts/netns.sh wan-up {prefix} tun failed: {created.stderr or created.stdout}")
    server_ns = f"{prefix}s"
    workdir.mkdir(parents=True, exist_ok=True)
    turn_secret = secrets.token_urlsafe(24)
    server = JanusServer(
        name="wan-janus",
        admin_ws_url=f"ws://{WAN_SERVER_IP}:{WS_PORT}",
        public_ws_url=f"ws://{WAN_SERVER_IP}:{WS_PORT}",
        api_secret=secrets.token_urlsafe(24),
        admin_key=secrets.token_urlsafe(24),
        token_secret=secrets.token_urlsafe(24),
        admin_secret=secrets.token_urlsafe(24),
        admin_api_url=f"ws://{WAN_SERVER_IP}:{ADMIN_PORT}",
    )
    events_secret = secrets.token_urlsafe(24)
    janus_turn = turn_credentials(secret=turn_secret, user="janus-wan", urls=(), valid_seconds=3600)
    lib_dir = debian_janus_lib_dir()
    write_janus_config(
        JanusConfigOptions(
            api_secret=server.api_secret,
            admin_secret=server.admin_secret,
            admin_key=server.admin_key,
            token_secret=server.token_secret,
            events_url=f"http://127.0.0.1:{EVENTS_PORT}/api/calls/janus-events/",
            events_secret=events_secret,
            ws_port=WS_PORT,
            admin_port=ADMIN_PORT,
            ws_ip=WAN_SERVER_IP,
            rtp_port_range="42000-42999",
            ice_enforce_list="s0",
            server_name=server.name,
            lib_dir=lib_dir,
            modules=available_modules(lib_dir),
            turn_server=WAN_SERVER_IP,
            turn_port=TURN_PORT,
            turn_user=janus_turn.username,
            turn_pwd=janus_turn.credential,
        ),
        workdir / "conf",
    )
    turn_dir = workdir / "turn"
    turn_dir.mkdir(parents=True, exist_ok=True)
    tls_cert, tls_key = _self_signed_certificate(turn_dir, WAN_SERVER_IP)
    write_turn_config(
        TurnConfigOptions(
            tls_port=TURN_TLS_PORT,
            tls_cert=str(tls_cert),
            tls_key=str(tls_key),
            secret=turn_secret,
            listen_ip=WAN_SERVER_IP,
            port=TURN_PORT,
            relay_port_range="43000-43999",
            allowed_peer_ips=(WAN_SERVER_IP,),
            log_file=str(turn_dir / "turn.log"),
            pid_file=str(turn_dir / "turn.pid"),
            db_file=str(turn_dir / "turndb"),
            verbose=True,  # logs each allocation with its username
        ),
        turn_dir,
    )
    events_file = workdir / "events.jsonl"
    collector_log = workdir / "collector.log"
    with collector_log.open("wb") as collector_stderr:
        collector = subprocess.Popen(
            [
                "ip", "netns", "exec", server_ns, sys.executable, str(PEER), "events",
                "--port", str(EVENTS_PORT), f"--secret={events_secret}", "--out", str(events_file),
            ],
            stdout=subprocess.PIPE,
            stderr=collector_stderr,
            cwd=ROOT,
        )  # fmt: skip
    janus_process: subprocess.Popen[bytes] | None = None
    turn_process: subprocess.Popen[bytes] | None = None
    try:
        assert collector.stdout is not None
        if collector.stdout.readline().strip() != b"ready":
            unavailable(f"the event collector did not start: {collector_log.read_text(errors='replace')[-1500:]}")
        turn_process = subprocess.Popen(
            ["ip", "netns", "exec", server_ns, "turnserver", "-c", str(turn_dir / "turnserver.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        janus_log = workdir / "janus.log"
        janus_process = subprocess.Popen(
            ["ip", "netns", "exec", server_ns, "janus", "-F", str(workdir / "conf"),
             "-C", str(workdir / "conf" / "janus.jcfg"), "-o", "-N", "-L", str(janus_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o027,
        )  # fmt: skip
        if not _wait_for_host_port(server_ns, WAN_SERVER_IP, WS_PORT, timeout=10):
            unavailable(
                f"Janus did not open {WAN_SERVER_IP}:{WS_PORT}: {janus_log.read_text(errors='replace')[-1500:]}"
            )
        if not _wait_for_host_port(server_ns, WAN_SERVER_IP, TURN_PORT, timeout=10):
            unavailable(f"coturn did not open {WAN_SERVER_IP}:{TURN_PORT}")
        yield WanHarness(
            prefix=prefix,
            server_ns=server_ns,
            router_ns=f"{prefix}r",
            customer_ns=f"{prefix}c",
            server=server,
            turn_secret=turn_secret,
            workdir=workdir,
            janus_log=janus_log,
            turn_log=turn_dir / "turn.log",
            events_file=events_file,
            janus_process=janus_process,
            turn_process=turn_process,
            turn_tls_cert=tls_cert,
        )
    finally:
        _stop(janus_process)
        _stop(turn_process)
        _stop(collector)
        if collector.stdout is not None:
            collector.stdout.close()
        subprocess.run(["bash", str(NETNS_SCRIPT), "wan-down", prefix], capture_output=True, check=False)


def _wait_for_host_port(netns: str, host: str, port: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["ip", "netns", "exec", netns, "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return True
        time.sleep(0.05)
    return False


# --- a call answered by an agent (the lifecycle and supervisor tests) ------------------------------


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[..., Any]:
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def queue() -> ServiceQueue:
    return service_queue_upsert(actor=SYSTEM, code="activation", name="激活", businesses=["activation"])


@pytest.fixture
def make_member(branch: Any, on_commit: Callable[..., Any]) -> Callable[..., StaffProfile]:
    counter = iter(range(1, 100))

    def make(role: Role = Role.AGENT, *, available: bool = True) -> StaffProfile:
        number = next(counter)
        staff = staff_member_upsert(
            actor=SYSTEM,
            username=f"call_{role.value}{number}",
            employee_number=f"CA{number:03d}",
            display_name=f"{role.label}{number}",
            role=role,
            branch=branch,
        )
        agent_skill_set(actor=SYSTEM, staff=staff, business_code="activation", proficiency=4)
        if available:
            with on_commit():
                agent_state_set(actor=SYSTEM, staff=staff, state=AgentState.AVAILABLE)
        return staff

    return make


@pytest.fixture
def answered(
    janus_settings: JanusServer,
    queue: ServiceQueue,
    make_customer: Callable[..., Customer],
    make_member: Callable[..., StaffProfile],
    on_commit: Callable[..., Any],
    client: Client,
) -> tuple[Call, StaffProfile, Client]:
    """A customer (with a browser session) whose call an agent has just answered."""
    agent = make_member()
    customer = make_customer()
    visit = visit_with_gate1(business_code="activation", mobile=customer.mobile, customer=customer, state="queue_ready")
    session = client.session
    session[SESSION_KEY] = visit.pk
    session.save()
    with on_commit():
        entry = queue_entry_enqueue(visit_id=visit.pk)
    with on_commit():  # the room is opened after the acceptance commits
        offer_accept(actor=agent.user, staff=agent, entry_id=entry.pk)
    return Call.objects.get(entry=entry), agent, client
