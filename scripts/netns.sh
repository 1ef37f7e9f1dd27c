#!/usr/bin/env bash
# Create or destroy the private network namespace that makes WebRTC work on a
# machine whose only allowed addresses are 127.0.0.1 (docs/janus.md):
# Janus never gathers ICE candidates on a loopback interface, so inside the
# namespace 127.0.0.1/32 is moved from `lo` onto one end of a veth pair (v0).
# Janus (with ice_enforce_list = "v0") and every client then run inside the
# namespace with `ip netns exec NAME ...`.
#
#   scripts/netns.sh up [NAME]      create (idempotent), default NAME=remotebank
#   scripts/netns.sh down [NAME]    destroy (idempotent)
#   scripts/netns.sh status [NAME]  show addresses; exit 1 when absent
#
# Needs root (CI runs as root). Prints every step it takes.
set -euo pipefail

action="${1:-}"
ns="${2:-${REMOTEBANK_JANUS_NETNS:-remotebank}}"

run() {
  echo "+ $*"
  "$@"
}

exists() {
  ip netns list | awk '{print $1}' | grep -qx -- "$ns"
}

need_root() {
  if [ "$(id -u)" != "0" ]; then
    echo "netns.sh: creating or destroying a network namespace needs root" >&2
    exit 2
  fi
}

case "$action" in
  up)
    need_root
    if exists; then
      echo "namespace $ns already exists"
    else
      run ip netns add "$ns"
    fi
    # Every step below checks first, so `up` can repair a half-made namespace.
    run ip -n "$ns" link set lo up
    if ip -n "$ns" -4 addr show dev lo | grep -q "inet 127.0.0.1/8"; then
      run ip -n "$ns" addr del 127.0.0.1/8 dev lo
    fi
    if ! ip -n "$ns" link show v0 >/dev/null 2>&1; then
      run ip -n "$ns" link add v0 type veth peer name v1
    fi
    if ! ip -n "$ns" -4 addr show dev v0 | grep -q "inet 127.0.0.1/32"; then
      run ip -n "$ns" addr add 127.0.0.1/32 dev v0
    fi
    run ip -n "$ns" link set v0 up
    run ip -n "$ns" link set v1 up
    echo "namespace $ns ready: 127.0.0.1/32 on v0 (run clients with: ip netns exec $ns ...)"
    ;;
  down)
    need_root
    if exists; then
      run ip netns del "$ns"
    else
      echo "namespace $ns does not exist"
    fi
    ;;
  status)
    if exists; then
      ip -n "$ns" -br addr
    else
      echo "namespace $ns does not exist"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 up|down|status [NAME]" >&2
    exit 64
    ;;
esac
