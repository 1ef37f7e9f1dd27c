#!/usr/bin/env bash
# Start the platform in the foreground: Daphne (HTTP + WebSockets), the queue
# dispatcher and, when a Redis broker is configured, a Celery worker.
# Ctrl-C stops everything.
set -euo pipefail
host="$1"
port="$2"
cd "$(dirname "$0")/.."
bin=.venv/bin

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash scripts/janus.sh stop >/dev/null 2>&1 || true
  bash scripts/turn.sh stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The TURN relay (coturn) and Janus, each with the project's own
# configuration generated from settings (docs/janus.md, "TURN and NAT").
bash scripts/turn.sh start
bash scripts/janus.sh start

if [ -n "${REDIS_URL:-}" ]; then
  "$bin/celery" -A remotebank worker -Q default,ocr,face,media,reports --loglevel=INFO &
  pids+=($!)
fi

# Daphne borrows PostgreSQL connections from a pool instead of opening one per
# request (remotebank/settings/database.py; ignored on SQLite).
REMOTEBANK_DB_POOL_SIZE="${REMOTEBANK_DB_POOL_SIZE:-20}" "$bin/daphne" -b "$host" -p "$port" remotebank.asgi:application &
pids+=($!)

# The queue dispatcher: offer timeouts, wrap-up ends, overflow, live figures.
"$bin/python" manage.py run_dispatcher &
pids+=($!)

# The audit sequencer chains the audit records services queue (PostgreSQL
# only; on SQLite every record is chained as it is written).
if [[ "${DATABASE_URL:-}" == postgres* ]]; then
  "$bin/python" manage.py run_audit_sequencer &
  pids+=($!)
fi

# Wait until Daphne answers before telling anyone to open it.
for _ in $(seq 1 100); do
  if curl -fsS "http://$host:$port/health/" >/dev/null 2>&1; then break; fi
  sleep 0.1
done

cat <<MSG

  RemoteBank is running (embedded default: SQLite, in-memory channel layer, eager Celery)
  unless DATABASE_URL / REDIS_URL say otherwise.

    Customer (mobile web): http://$host:$port/
    Back office (staff):   http://$host:$port/console/
    API schema (OpenAPI):  http://$host:$port/api/schema/
    Health:                http://$host:$port/health/
    Agent console:         http://$host:$port/console/live/agent/
    Supervisor live view:  http://$host:$port/console/live/supervisor/
    Compliance workspace:  http://$host:$port/console/live/compliance/
    Janus (video):         ws://127.0.0.1:8188 (log: var/janus/janus.log)
    TURN relay (coturn):   turn:127.0.0.1:3478 UDP+TCP (log: var/turn/turn.log)

  Demo logins (password: ${REMOTEBANK_DEMO_PASSWORD:-remotebank-demo}):
    admin (administrator), compliance01 (compliance officer),
    supervisor01, supervisor02 (supervisors), agent01 … agent12 (agents), expert01, expert02 (experts)

  Second factor: administrators, supervisors and compliance officers set up an
  authenticator app (TOTP) at their first login, at
  http://$host:$port/console/security/enrol/ (the page shows a QR code, then one-time recovery codes).

  Press Ctrl-C to stop.
MSG

wait -n
