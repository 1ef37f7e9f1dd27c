"""Janus configuration generated from settings (docs/janus.md).

Janus runs with the project's own configuration folder (``var/janus/conf`` by
default), never the system's ``/etc/janus``. Everything here is a pure function
of :class:`JanusConfigOptions` except :func:`available_modules` (lists the
Debian module folders) and :func:`write_janus_config` (writes the files).

What the generated configuration does:

- ``janus.jcfg``: ``api_secret`` for the Django server, ``token_auth`` with
  ``token_auth_secret`` for browsers (HMAC-signed tokens the web app mints
  itself, see ``apps.calls.integrations.janus.janus_token``), ``admin_secret``,
  ``recordings_tmp_ext = "tmp"`` (an open recording ends in ``.mjr.tmp``), the
  RTP port range, optionally ``ice_enforce_list`` (the network-namespace
  recipe), ``nat_1_1_mapping`` (a Janus behind a 1:1 NAT advertises its
  public address) and the project's TURN server (coturn, with credentials
  minted from the TURN shared secret when the file is written; no public STUN
  server: there is no internet here), and every plugin,
  transport, event handler and logger disabled except: the videoroom plugin,
  the WebSockets transport and the sample event handler.
- ``janus.transport.websockets.jcfg``: the Janus API on ``ws_ip:ws_port`` and
  the Admin API on ``ws_ip:admin_port``; no TLS (a reverse proxy terminates it).
- ``janus.plugin.videoroom.jcfg``: ``admin_key`` (rooms are created only by
  the server), ``lock_rtp_forward``, no demo rooms.
- ``janus.eventhandler.sampleevh.jcfg``: every event POSTed as grouped JSON to
  the web app, authenticated by the events secret.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# A jcfg value: libconfig scalars and arrays of strings.
JcfgValue = str | bool | int | Sequence[str]
JcfgDocument = Mapping[str, Mapping[str, JcfgValue]]

# The only Janus modules we load; everything else found in the module folders
# is listed under ``disable``.
VIDEOROOM_PLUGIN = "libjanus_videoroom.so"
WEBSOCKETS_TRANSPORT = "libjanus_websockets.so"
SAMPLE_EVENT_HANDLER = "libjanus_sampleevh.so"
EVENTS_USER = "janus"

# Janus refuses to write recordings into these (and below them).
PROTECTED_FOLDERS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/initrd",
    "/lib",
    "/lib32",
    "/lib64",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
)


def debian_janus_lib_dir() -> Path:
    """Where Debian's ``janus`` package puts its modules (multiarch path)."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    return Path("/usr/lib") / multiarch / "janus"


@dataclass(frozen=True)
class JanusModules:
    """The shared objects found in Janus' module folders, by kind."""

    plugins: tuple[str, ...] = ()
    transports: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    loggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class JanusConfigOptions:
    """Everything the generated configuration depends on."""

    api_secret: str
    admin_secret: str
    admin_key: str
    token_secret: str
    events_url: str
    events_secret: str
    ws_port: int = 8188
    admin_port: int = 7088
    ws_ip: str = "127.0.0.1"
    rtp_port_range: str = "20000-40000"
    ice_enforce_list: str = ""
    debug_level: int = 4
    server_name: str = "remotebank"
    lib_dir: Path = field(default_factory=debian_janus_lib_dir)
    modules: JanusModules = JanusModules()
    # Seconds of events before the sample handler sends per-handle media stats.
    stats_period: int = 5
    # Public address(es) of a Janus behind a 1:1 NAT, comma-separated.
    nat_1_1_mapping: str = ""
    keep_private_host: bool = True
    # Janus' own TURN server (host, port, "udp"/"tcp"/"tls") and credentials.
    turn_server: str = ""
    turn_port: int = 3478
    turn_type: str = "udp"
    turn_user: str = ""
    turn_pwd: str = ""


class JanusConfigError(ValueError):
    """The options cannot produce a valid configuration."""


def _quote(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise JanusConfigError("jcfg strings cannot span lines")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render_value(value: JcfgValue) -> str:
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    return "[" + ", ".join(_quote(item) for item in value) + "]"


def render_jcfg(document: JcfgDocument, *, header: str = "") -> str:
    """Render sections of settings in Janus' libconfig (``.jcfg``) syntax."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for section, items in document.items():
        lines.append(f"{section}: {{")
        lines.extend(f"\t{key} = {_render_value(value)}" for key, value in items.items())
        lines.append("}")
    return "\n".join(lines) + "\n"


def events_backend_url(events_url: str, events_secret: str) -> str:
    """The events URL with ``secret=`` added to its query (what the endpoint checks)."""
    parts = urlsplit(events_url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "secret"]
    query.append(("secret", events_secret))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _disabled(found: Sequence[str], keep: set[str]) -> str:
    return ",".join(name for name in sorted(found) if name not in keep)


def _validate(options: JanusConfigOptions) -> None:
    for name in ("api_secret", "admin_secret", "admin_key", "token_secret", "events_secret"):
        if not getattr(options, name):
            raise JanusConfigError(f"{name} must not be empty")
    low, sep, high = options.rtp_port_range.partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) <= 65535):
        raise JanusConfigError(f"rtp_port_range must look like 20000-40000, got {options.rtp_port_range!r}")
    if options.ws_port == options.admin_port:
        raise JanusConfigError("the Janus API and the Admin API need different ports")
    if not 0 <= options.debug_level <= 7:
        raise JanusConfigError("debug_level must be between 0 and 7")
    if not options.events_url.startswith(("http://", "https://")):
        raise JanusConfigError("events_url must be an http(s) URL")
    if options.turn_server and options.turn_type not in ("udp", "tcp", "tls"):
        raise JanusConfigError(f"turn_type must be udp, tcp or tls, got {options.turn_type!r}")
    if options.turn_server and not (options.turn_user and options.turn_pwd):
        raise JanusConfigError("a TURN server needs turn_user and turn_pwd")


def janus_jcfg(options: JanusConfigOptions) -> dict[str, dict[str, JcfgValue]]:
    lib = options.lib_dir
    nat: dict[str, JcfgValue] = {"nice_debug": False, "ignore_mdns": True}
    if options.ice_enforce_list:
        nat["ice_enforce_list"] = options.ice_enforce_list
    if options.nat_1_1_mapping:
        nat["nat_1_1_mapping"] = options.nat_1_1_mapping
        nat["keep_private_host"] = options.keep_private_host
    if options.turn_server:
        nat.update(
            turn_server=options.turn_server,
            turn_port=options.turn_port,
            turn_type=options.turn_type,
            turn_user=options.turn_user,
            turn_pwd=options.turn_pwd,
        )
    return {
        "general": {
            "configs_folder": "",  # replaced by render: the folder the files are written to
            "plugins_folder": str(lib / "plugins"),
            "transports_folder": str(lib / "transports"),
            "events_folder": str(lib / "events"),
            "loggers_folder": str(lib / "loggers"),
            "debug_level": options.debug_level,
            "debug_timestamps": True,
            "debug_colors": False,
            "server_name": options.server_name,
            "api_secret": options.api_secret,
            "token_auth": True,
            "token_auth_secret": options.token_secret,
            "admin_secret": options.admin_secret,
            "recordings_tmp_ext": "tmp",
            "hide_dependencies": True,
            "protected_folders": list(PROTECTED_FOLDERS),
        },
        "certificates": {},
        "media": {"rtp_port_range": options.rtp_port_range},
        "nat": nat,
        "plugins": {"disable": _disabled(options.modules.plugins, {VIDEOROOM_PLUGIN})},
        "transports": {"disable": _disabled(options.modules.transports, {WEBSOCKETS_TRANSPORT})},
        "loggers": {"disable": _disabled(options.modules.loggers, set())},
        "events": {
            "broadcast": True,
            "disable": _disabled(options.modules.events, {SAMPLE_EVENT_HANDLER}),
            "stats_period": options.stats_period,
            "combine_media_stats": True,
        },
    }


def websockets_jcfg(options: JanusConfigOptions) -> dict[str, dict[str, JcfgValue]]:
    return {
        "general": {
            "json": "compact",
            "ws": True,
            "ws_port": options.ws_port,
            "ws_ip": options.ws_ip,
            "wss": False,
        },
        "admin": {
            "admin_ws": True,
            "admin_ws_port": options.admin_port,
            "admin_ws_ip": options.ws_ip,
            "admin_wss": False,
        },
    }


def videoroom_jcfg(options: JanusConfigOptions) -> dict[str, dict[str, JcfgValue]]:
    # No room sections: every room is created at run time by the server, with
    # the admin key, for one call.
    return {"general": {"admin_key": options.admin_key, "lock_rtp_forward": True, "events": True}}


def sampleevh_jcfg(options: JanusConfigOptions) -> dict[str, dict[str, JcfgValue]]:
    return {
        "general": {
            "enabled": True,
            "events": "all",
            "grouping": True,
            "json": "compact",
            "compress": False,
            "backend": events_backend_url(options.events_url, options.events_secret),
            "backend_user": EVENTS_USER,
            "backend_pwd": options.events_secret,
            "max_retransmissions": 5,
            "retransmissions_backoff": 100,
        }
    }


GENERATED_HEADER = "Generated by `manage.py janus_config` from the project's settings: do not edit.\nSee docs/janus.md."


def janus_config_files(options: JanusConfigOptions, *, configs_folder: Path) -> dict[str, str]:
    """File name → contents of the whole configuration folder."""
    _validate(options)
    core = janus_jcfg(options)
    core["general"]["configs_folder"] = str(configs_folder)
    documents = {
        "janus.jcfg": core,
        "janus.transport.websockets.jcfg": websockets_jcfg(options),
        "janus.plugin.videoroom.jcfg": videoroom_jcfg(options),
        "janus.eventhandler.sampleevh.jcfg": sampleevh_jcfg(options),
    }
    return {name: render_jcfg(document, header=GENERATED_HEADER) for name, document in documents.items()}


def available_modules(lib_dir: Path) -> JanusModules:
    """The ``.so`` files in each of Janus' module folders (missing folder: none)."""

    def listing(kind: str) -> tuple[str, ...]:
        folder = lib_dir / kind
        if not folder.is_dir():
            return ()
        return tuple(sorted(path.name for path in folder.iterdir() if path.name.endswith(".so")))

    return JanusModules(
        plugins=listing("plugins"),
        transports=listing("transports"),
        events=listing("events"),
        loggers=listing("loggers"),
    )


def write_janus_config(options: JanusConfigOptions, out_dir: Path) -> list[Path]:
    """Write the configuration folder; owner-only permissions (it holds secrets)."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o700)
    written = []
    for name, text in janus_config_files(options, configs_folder=out_dir).items():
        path = out_dir / name
        # Write then rename, so a Janus starting concurrently never reads half a file.
        partial = path.with_suffix(".partial")
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o600)
        partial.replace(path)
        written.append(path)
    return written
