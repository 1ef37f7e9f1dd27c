"""Write the Janus configuration folder from settings (docs/janus.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.calls.integrations.janus import JanusServer, janus_server, janus_servers
from apps.calls.integrations.turn import turn_credentials
from apps.calls.janus_config import (
    JanusConfigError,
    JanusConfigOptions,
    available_modules,
    debian_janus_lib_dir,
    write_janus_config,
)


def _port_of(url: str, default: int) -> int:
    if not url:
        return default
    return urlsplit(url).port or default


class Command(BaseCommand):
    help = "Generate Janus' configuration folder (janus.jcfg and friends) from the project's settings."
    # Only settings are read: starting Janus must not depend on URL or model checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--out", type=Path, default=None, help="folder to write (default: settings.JANUS_CONFIG_DIR)"
        )
        parser.add_argument("--server", default=None, help="name of the Janus server in settings (default: the first)")
        parser.add_argument("--port", type=int, default=None, help="Janus API WebSocket port (default: from ws_url)")
        parser.add_argument(
            "--admin-port", type=int, default=None, help="Admin API WebSocket port (default: from admin_api_url)"
        )
        parser.add_argument("--ws-ip", default="127.0.0.1", help="address the WebSocket servers bind to")
        parser.add_argument(
            "--ice-enforce-list",
            default=None,
            help='interfaces ICE may use, e.g. "v0" inside the network namespace (default: v0 when JANUS_NETNS is set)',
        )
        parser.add_argument("--lib-dir", type=Path, default=None, help="Janus module folder (default: Debian's)")
        parser.add_argument(
            "--nat-1-1-mapping", default=None, help="public address of Janus behind NAT (default: settings)"
        )
        parser.add_argument(
            "--turn-server",
            default=None,
            help="TURN server Janus itself uses (default: TURN_LISTEN_IP when REMOTEBANK_JANUS_TURN is on)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        server: JanusServer = janus_server(options["server"]) if options["server"] else janus_servers()[0]
        ice_enforce_list = options["ice_enforce_list"]
        if ice_enforce_list is None:
            ice_enforce_list = "v0" if settings.JANUS_NETNS else ""
        lib_dir: Path = options["lib_dir"] or debian_janus_lib_dir()
        if not (lib_dir / "plugins" / "libjanus_videoroom.so").exists():
            self.stderr.write(f"warning: no videoroom plugin in {lib_dir}/plugins (is Debian's janus installed?)")
        turn: dict[str, Any] = {}
        turn_server = options["turn_server"]
        if turn_server is None and settings.TURN_ENABLED and settings.JANUS_TURN:
            turn_server = settings.TURN_LISTEN_IP
        if turn_server:
            # REST API credentials like a participant's, but long-lived:
            # they are minted again whenever Janus is (re)started.
            credentials = turn_credentials(
                secret=settings.TURN_SECRET,
                user=f"janus-{server.name}",
                urls=(),
                valid_seconds=settings.JANUS_TURN_CREDENTIAL_SECONDS,
            )
            turn = {
                "turn_server": turn_server,
                "turn_port": settings.TURN_PORT,
                "turn_type": "udp",
                "turn_user": credentials.username,
                "turn_pwd": credentials.credential,
            }
        nat_1_1_mapping = options["nat_1_1_mapping"]
        if nat_1_1_mapping is None:
            nat_1_1_mapping = settings.JANUS_NAT_1_1_MAPPING
        config = JanusConfigOptions(
            api_secret=server.api_secret,
            admin_secret=server.admin_secret,
            admin_key=server.admin_key,
            token_secret=server.token_secret,
            events_url=settings.JANUS_EVENTS_URL,
            events_secret=settings.JANUS_EVENTS_SECRET,
            ws_port=options["port"] or _port_of(server.admin_ws_url, 8188),
            admin_port=options["admin_port"] or _port_of(server.admin_api_url, 7088),
            ws_ip=options["ws_ip"],
            rtp_port_range=settings.JANUS_RTP_PORT_RANGE,
            ice_enforce_list=ice_enforce_list,
            debug_level=settings.JANUS_DEBUG_LEVEL,
            server_name=server.name,
            lib_dir=lib_dir,
            modules=available_modules(lib_dir),
            nat_1_1_mapping=nat_1_1_mapping,
            keep_private_host=settings.JANUS_KEEP_PRIVATE_HOST,
            **turn,
        )
        out_dir: Path = options["out"] or Path(settings.JANUS_CONFIG_DIR)
        try:
            written = write_janus_config(config, out_dir)
        except (JanusConfigError, OSError) as exc:
            raise CommandError(f"Cannot write the Janus configuration: {exc}") from exc
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Janus configuration for {server.name!r} written to {out_dir.resolve()} "
                f"({len(written)} files; API ws://{config.ws_ip}:{config.ws_port}, "
                f"Admin API ws://{config.ws_ip}:{config.admin_port}"
                + (f", ICE only on {ice_enforce_list}" if ice_enforce_list else "")
                + (f", public address {nat_1_1_mapping}" if nat_1_1_mapping else "")
                + (f", TURN {turn_server}:{settings.TURN_PORT}" if turn_server else "")
                + ")"
            )
