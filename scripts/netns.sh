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
# A small wide-area network for the TURN/NAT/weak-link tests (docs/janus.md,
# "Network tests"), three namespaces named after PREFIX:
#
#   PREFIXs  the server: Janus, coturn, the agent; 198.18.0.1/24 on s0, lo kept
#   PREFIXr  a NAT router (iptables MASQUERADE) between the two networks:
#            198.18.0.254/24 on r0, 198.19.0.1/24 on r1
#   PREFIXc  the customer's phone behind that NAT: 198.19.0.2/24 on c0,
#            default route via the router; the server never sees 198.19.0.0/24
#
# Addresses are from 198.18.0.0/15 (RFC 2544, reserved for benchmarking test
# networks) and exist only inside these namespaces. LINK is how the customer
# reaches the router: `veth` (a plain cable) or `tun` (two TUN devices that
# tests/calls/linkem.py joins with delay, loss and a rate limit: this kernel
# has no sch_netem).
#
#   scripts/netns.sh wan-up PREFIX [veth|tun]
#   scripts/netns.sh wan-firewall PREFIX open|relay-only|no-udp|tls-only|outage
#       relay-only: the customer's UDP may reach the server only at the TURN
#       port (3478); no-udp: no UDP at all (TURN over TCP is the way out);
#       tls-only: the customer reaches nothing but TCP 5349 (TURN over TLS)
#       and the signalling WebSocket, TCP 8188 (443 in production);
#       outage: nothing passes (a tunnel, a lift)
#   scripts/netns.sh wan-down PREFIX
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
  wan-up)
    need_root
    link="${3:-veth}"
    s="${ns}s" r="${ns}r" c="${ns}c"
    for n in "$s" "$r" "$c"; do
      ip netns list | awk '{print $1}' | grep -qx -- "$n" || run ip netns add "$n"
      run ip -n "$n" link set lo up
    done
    ip -n "$s" link show s0 >/dev/null 2>&1 || run ip -n "$s" link add s0 type veth peer name r0 netns "$r"
    run ip -n "$s" addr replace 198.18.0.1/24 dev s0
    run ip -n "$r" addr replace 198.18.0.254/24 dev r0
    if [ "$link" = "tun" ]; then
      ip -n "$c" link show c0 >/dev/null 2>&1 || run ip -n "$c" tuntap add dev c0 mode tun
      ip -n "$r" link show r1 >/dev/null 2>&1 || run ip -n "$r" tuntap add dev r1 mode tun
      run ip -n "$c" addr replace 198.19.0.2 peer 198.19.0.1 dev c0
      run ip -n "$r" addr replace 198.19.0.1 peer 198.19.0.2 dev r1
    else
      ip -n "$c" link show c0 >/dev/null 2>&1 || run ip -n "$c" link add c0 type veth peer name r1 netns "$r"
      run ip -n "$c" addr replace 198.19.0.2/24 dev c0
      run ip -n "$r" addr replace 198.19.0.1/24 dev r1
    fi
    for pair in "$s s0" "$r r0" "$r r1" "$c c0"; do
      set -- $pair
      run ip -n "$1" link set "$2" up
    done
    run ip -n "$c" route replace default via 198.19.0.1 dev c0
    run ip netns exec "$r" sysctl -q -w net.ipv4.ip_forward=1
    # The customer's side is a private network behind the router's address.
    ip netns exec "$r" iptables -t nat -C POSTROUTING -o r0 -j MASQUERADE 2>/dev/null \
      || run ip netns exec "$r" iptables -t nat -A POSTROUTING -o r0 -j MASQUERADE
    echo "wide-area network $ns ready: server $s (198.18.0.1), NAT router $r, customer $c (198.19.0.2, link $link)"
    ;;
  wan-firewall)
    need_root
    mode="${3:-open}"
    r="${ns}r"
    run ip netns exec "$r" iptables -F FORWARD
    case "$mode" in
      open) ;;
      relay-only)
        run ip netns exec "$r" iptables -A FORWARD -i r1 -p udp -d 198.18.0.1 --dport 3478 -j ACCEPT
        run ip netns exec "$r" iptables -A FORWARD -i r1 -p udp -j DROP
        ;;
      no-udp)
        run ip netns exec "$r" iptables -A FORWARD -p udp -j DROP
        ;;
      tls-only)
        run ip netns exec "$r" iptables -A FORWARD -i r1 -p tcp -d 198.18.0.1 --dport 5349 -j ACCEPT
        run ip netns exec "$r" iptables -A FORWARD -i r1 -p tcp -d 198.18.0.1 --dport 8188 -j ACCEPT
        run ip netns exec "$r" iptables -A FORWARD -i r1 -j DROP
        ;;
      outage)
        run ip netns exec "$r" iptables -A FORWARD -j DROP
        ;;
      *) echo "wan-firewall: unknown mode $mode" >&2; exit 64 ;;
    esac
    ;;
  wan-down)
    need_root
    for n in "${ns}c" "${ns}r" "${ns}s"; do
      if ip netns list | awk '{print $1}' | grep -qx -- "$n"; then run ip netns del "$n"; fi
    done
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
    echo "usage: $0 up|down|status [NAME] | wan-up PREFIX [veth|tun] | wan-firewall PREFIX MODE | wan-down PREFIX" >&2
    exit 64
    ;;
esac
