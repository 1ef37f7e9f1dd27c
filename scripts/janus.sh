#!/usr/bin/env bash
# Start or stop Janus with the project's own configuration (docs/janus.md).
#
#   scripts/janus.sh start    generate var/janus/conf from settings, start Janus,
#                             wait until its WebSocket port answers
#   scripts/janus.sh stop     stop the Janus started by `start` (pidfile)
#   scripts/janus.sh status   exit 0 when running
#
# Files: var/janus/conf/ (generated, secrets: 0700), var/janus/janus.log,
# var/janus/janus.pid (REMOTEBANK_JANUS_RUN_DIR moves them). When
# REMOTEBANK_JANUS_NETNS names a network namespace (scripts/netns.sh), Janus
# runs inside it with ICE restricted to its v0 interface.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-.venv/bin/python}"
run_dir="${REMOTEBANK_JANUS_RUN_DIR:-${REMOTEBANK_VAR_DIR:-$PWD/var}/janus}"
conf="$run_dir/conf"
log="$run_dir/janus.log"
pidfile="$run_dir/janus.pid"
netns="${REMOTEBANK_JANUS_NETNS:-}"

in_ns() {
  if [ -n "$netns" ]; then ip netns exec "$netns" "$@"; else "$@"; fi
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "janus" ] || return 1
  echo "$pid"
}

port_answers() {
  in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

start() {
  if pid="$(running_pid)"; then
    echo "Janus already running (pid $pid)"
    return 0
  fi
  command -v janus >/dev/null || { echo "janus is not installed (apt-get install janus)" >&2; exit 1; }
  if [ -n "$netns" ] && ! ip netns list | awk '{print $1}' | grep -qx -- "$netns"; then
    echo "network namespace $netns does not exist: run scripts/netns.sh up $netns (as root)" >&2
    exit 1
  fi
  mkdir -p "$run_dir"
  "$python" manage.py janus_config --out "$conf"
  local port
  port="$(sed -n 's/^\s*ws_port = \([0-9]*\)$/\1/p' "$conf/janus.transport.websockets.jcfg")"
  if port_answers "$port"; then
    echo "port $port is already taken${netns:+ in namespace $netns}: is another Janus running?" >&2
    exit 1
  fi
  rm -f "$pidfile"
  # Not `janus -b`: daemonizing sets umask 0 and every recording would be
  # world-writable. Recordings get 0640 this way.
  (
    umask 027
    in_ns setsid janus -F "$conf" -C "$conf/janus.jcfg" -o -N -L "$log" -p "$pidfile" </dev/null >/dev/null 2>&1 &
  )
  local started=$SECONDS
  for _ in $(seq 1 100); do
    if port_answers "$port"; then
      echo "Janus running (pid $(running_pid || echo '?'), ws://127.0.0.1:$port${netns:+ in namespace $netns}, log $log) after $((SECONDS - started)) s"
      return 0
    fi
    sleep 0.1
  done
  echo "Janus did not open port $port within 10 s; last log lines:" >&2
  tail -n 20 "$log" >&2 || true
  stop >/dev/null 2>&1 || true
  exit 1
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "Janus is not running"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "Janus stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "Janus killed (pid $pid) after 5 s"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status)
    if pid="$(running_pid)"; then echo "Janus running (pid $pid)"; else echo "Janus not running"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 64 ;;
esac
