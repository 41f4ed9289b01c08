#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests: initdb into a temp dir, listen on a free
# loopback port, print the connection URL on stdout. Stop it with: pg_ctl -D "$PGDATA" stop
set -euo pipefail
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$BIN/initdb" ] || { echo "no PostgreSQL server binaries" >&2; exit 1; }
DATA="$(mktemp -d /tmp/llm-eff-pg.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RUN=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$DATA"
  RUN=(runuser -u postgres --)
fi
"${RUN[@]}" "$BIN/initdb" -D "$DATA/data" -U llmeff --auth=trust >/dev/null
"${RUN[@]}" "$BIN/pg_ctl" -D "$DATA/data" -l "$DATA/log" -w \
  -o "-h 127.0.0.1 -p $PORT -k $DATA" start >/dev/null
echo "postgresql://llmeff@127.0.0.1:$PORT/postgres"
