"""Write the Janus configuration folder from settings (docs/janus.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.calls.integrations.janus import JanusServer, janus_server, janus_servers
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

    def handle(self, *args: Any, **options: Any) -> None:
        server: JanusServer = janus_server(options["server"]) if options["server"] else janus_servers()[0]
        ice_enforce_list = options["ice_enforce_list"]
        if ice_enforce_list is None:
            ice_enforce_list = "v0" if settings.JANUS_NETNS else ""
        lib_dir: Path = options["lib_dir"] or debian_janus_lib_dir()
        if not (lib_dir / "plugins" / "libjanus_videoroom.so").exists():
            self.stderr.write(f"warning: no videoroom plugin in {lib_dir}/plugins (is Debian's janus installed?)")
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
                + ")"
            )
