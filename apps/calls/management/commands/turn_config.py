"""Write coturn's configuration (turnserver.conf) from settings (docs/janus.md, "TURN and NAT")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.calls.turn_config import TurnConfigError, TurnConfigOptions, write_turn_config


class Command(BaseCommand):
    help = "Generate coturn's turnserver.conf from the project's settings."
    # Only settings are read: starting coturn must not depend on URL or model checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, default=None, help="folder to write (default: settings.TURN_RUN_DIR)")
        parser.add_argument("--listen-ip", default=None, help="address coturn listens on (default: TURN_LISTEN_IP)")
        parser.add_argument(
            "--allowed-peer-ip",
            action="append",
            default=None,
            help="address coturn may relay to (repeat; default: TURN_ALLOWED_PEER_IPS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run_dir = Path(settings.TURN_RUN_DIR)
        out_dir: Path = options["out"] or run_dir
        config = TurnConfigOptions(
            secret=settings.TURN_SECRET,
            realm=settings.TURN_REALM,
            listen_ip=options["listen_ip"] or settings.TURN_LISTEN_IP,
            relay_ip=settings.TURN_RELAY_IP,
            external_ip=settings.TURN_EXTERNAL_IP,
            port=settings.TURN_PORT,
            tls_port=settings.TURN_TLS_PORT,
            tls_cert=settings.TURN_TLS_CERT,
            tls_key=settings.TURN_TLS_KEY,
            relay_port_range=settings.TURN_RELAY_PORT_RANGE,
            allowed_peer_ips=tuple(options["allowed_peer_ip"] or settings.TURN_ALLOWED_PEER_IPS),
            log_file=str(out_dir.resolve() / "turn.log"),
            pid_file=str(out_dir.resolve() / "turn.pid"),
            db_file=str(out_dir.resolve() / "turndb"),
        )
        try:
            path = write_turn_config(config, out_dir)
        except (TurnConfigError, OSError) as exc:
            raise CommandError(f"Cannot write the TURN configuration: {exc}") from exc
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"coturn configuration written to {path} (listening {config.listen_ip}:{config.port} UDP+TCP"
                + (f", TLS {config.tls_port}" if config.tls_cert else "")
                + f", relay ports {config.relay_port_range})"
            )
