#!/usr/bin/env bash
# Start or stop coturn (the TURN relay beside Janus) with the project's own
# configuration (docs/janus.md, "TURN and NAT").
#
#   scripts/turn.sh start    generate var/turn/turnserver.conf from settings,
#                            start turnserver, wait until its TCP port answers
#   scripts/turn.sh stop     stop the turnserver started by `start` (pidfile)
#   scripts/turn.sh status   exit 0 when running
#
# Files: var/turn/ (turnserver.conf holds the shared secret: 0700/0600),
# turn.log, turn.pid, turndb (REMOTEBANK_TURN_RUN_DIR moves them). When
# REMOTEBANK_JANUS_NETNS names a network namespace, coturn runs inside it,
# beside Janus. With REMOTEBANK_TURN_ENABLED=false `start` does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-.venv/bin/python}"
run_dir="${REMOTEBANK_TURN_RUN_DIR:-${REMOTEBANK_VAR_DIR:-$PWD/var}/turn}"
conf="$run_dir/turnserver.conf"
pidfile="$run_dir/turn.pid"
netns="${REMOTEBANK_JANUS_NETNS:-}"

in_ns() {
  if [ -n "$netns" ]; then ip netns exec "$netns" "$@"; else "$@"; fi
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "turnserver" ] || return 1
  echo "$pid"
}

enabled() {
  case "$(echo "${REMOTEBANK_TURN_ENABLED:-true}" | tr '[:upper:]' '[:lower:]')" in
    0 | false | no | off | "") return 1 ;;
    *) return 0 ;;
  esac
}

start() {
  if ! enabled; then
    echo "TURN disabled (REMOTEBANK_TURN_ENABLED=false): coturn not started"
    return 0
  fi
  if pid="$(running_pid)"; then
    echo "coturn already running (pid $pid)"
    return 0
  fi
  command -v turnserver >/dev/null || { echo "turnserver is not installed (apt-get install coturn)" >&2; exit 1; }
  mkdir -p "$run_dir"
  "$python" manage.py turn_config --out "$run_dir"
  local ip port
  ip="$(sed -n 's/^listening-ip=//p' "$conf")"
  port="$(sed -n 's/^listening-port=//p' "$conf")"
  if in_ns bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null; then
    echo "port $ip:$port is already taken${netns:+ in namespace $netns}: is another TURN server running?" >&2
    exit 1
  fi
  rm -f "$pidfile"
  (
    umask 077
    in_ns setsid turnserver -c "$conf" </dev/null >/dev/null 2>&1 &
  )
  for _ in $(seq 1 100); do
    if in_ns bash -c "exec 3<>/dev/tcp/$ip/$port" 2>/dev/null && running_pid >/dev/null; then
      echo "coturn running (pid $(running_pid), turn:$ip:$port UDP+TCP${netns:+ in namespace $netns}, log $run_dir/turn.log)"
      return 0
    fi
    sleep 0.1
  done
  echo "coturn did not open $ip:$port within 10 s; last log lines:" >&2
  tail -n 20 "$run_dir/turn.log" >&2 || true
  exit 1
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    echo "coturn is not running"
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "coturn stopped (pid $pid)"; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "coturn killed (pid $pid) after 5 s"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status)
    if pid="$(running_pid)"; then echo "coturn running (pid $pid)"; else echo "coturn not running"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 64 ;;
esac
