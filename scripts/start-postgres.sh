#!/bin/sh
# Start (creating if needed) a local Debian PostgreSQL cluster for bootserver's tests and print a URL.
# Idempotent; run as root. Listens on localhost only. Usage:
#   export BOOTSERVER_TEST_PG_URL="$(scripts/start-postgres.sh)"
# The role may create databases: the tests make a fresh database per test and drop it afterwards.
set -eu

CLUSTER="${BOOTSERVER_PG_CLUSTER:-main}"
ROLE="${BOOTSERVER_PG_ROLE:-bootserver_test}"
PASSWORD="${BOOTSERVER_PG_PASSWORD:-bootserver_test}"
DATABASE="${BOOTSERVER_PG_DATABASE:-bootserver_test}"

log() { echo "start-postgres: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
command -v pg_lsclusters >/dev/null || { log "PostgreSQL is not installed (apt-get install postgresql)"; exit 1; }

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
[ -n "$VERSION" ] || { log "no PostgreSQL server version under /usr/lib/postgresql"; exit 1; }

cluster_field() {  # $1: column number of pg_lsclusters (3 port, 4 status)
    pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" -v f="$1" '$1 == v && $2 == c { print $f }'
}

if [ -z "$(cluster_field 2)" ]; then
    log "creating cluster $VERSION/$CLUSTER"
    pg_createcluster "$VERSION" "$CLUSTER" >&2
fi
case "$(cluster_field 4)" in
    online*) ;;
    *) log "starting cluster $VERSION/$CLUSTER"; pg_ctlcluster "$VERSION" "$CLUSTER" start >&2 ;;
esac
PORT="$(cluster_field 3)"

psql_admin() { runuser -u postgres -- psql -X -q -p "$PORT" -v ON_ERROR_STOP=1 "$@"; }

# Wait until the server accepts connections (it may still be starting).
i=0
until psql_admin -c 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -le 60 ] || { log "cluster $VERSION/$CLUSTER on port $PORT does not accept connections"; exit 1; }
    sleep 0.5
done

psql_admin <<SQL >&2
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE "$ROLE" LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE "$ROLE" LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
-- the tests drop each test database WITH (FORCE), which signals whatever backends are still on it
GRANT pg_signal_backend TO "$ROLE";
SQL
if [ -z "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
    psql_admin -c "CREATE DATABASE \"$DATABASE\" OWNER \"$ROLE\"" >&2
fi

echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
