#!/usr/bin/env bash
# The rehearsal's stand-in for the official postgres image's docker-entrypoint.sh
# (rehearsal/images.py), keeping its contract as far as the library and the backup scripts rely
# on it: PGDATA (a volume), POSTGRES_USER, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
# POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256, for every TCP client),
# POSTGRES_INITDB_ARGS, /docker-entrypoint-initdb.d. The first start initialises with a
# temporary server on the socket only, so TCP answers only once the real server is up. Started
# as root, it takes its data directory and drops to the postgres user: that needs only CHOWN,
# DAC_OVERRIDE, FOWNER, SETGID and SETUID, and works under no-new-privileges.
set -Eeuo pipefail

log() {
  echo "docker-entrypoint: $*" >&2
}

# POSTGRES_PASSWORD or its _FILE variant (a Docker secret), never both.
file_env() {
  local var=$1 file_var="${1}_FILE"
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    log "error: both $var and $file_var are set (but are exclusive)"
    exit 1
  fi
  if [ -n "${!file_var:-}" ]; then
    export "$var"="$(<"${!file_var}")"
  fi
  unset "$file_var"
}

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  # setpriv rather than gosu (not in Debian 12): it only drops privileges.
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  file_env POSTGRES_PASSWORD
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    log "error: database is uninitialized and superuser password is not specified; set" \
      "POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust"
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options, as in the official image
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
      ${POSTGRES_INITDB_ARGS:-} >&2
  else
    initdb --username="$POSTGRES_USER" ${POSTGRES_INITDB_ARGS:-} >&2
  fi
  # Like the official image: every address, password auth for TCP from anywhere (initdb's
  # own lines keep the socket trusted for the entrypoint and `docker exec`).
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >&2
  export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}"
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;' >&2
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) log "running $f"; # shellcheck disable=SC1090
        . "$f" ;;
      *.sql) log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" >&2 ;;
      *) [ ! -e "$f" ] || log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >&2
  unset PGPASSWORD
  log "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
