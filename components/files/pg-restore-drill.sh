#!/usr/bin/env bash
# The scheduled restore drill: proves the newest backup can be restored, the way it would be
# after losing the host. It takes the newest dump of one backup (from R2 when the backup has an
# off-site copy, otherwise from the host), starts a throwaway container of the same PostgreSQL
# image the database runs (`docker run --rm`, on a network of its own with no route out and no
# published port), restores the dump into it, and checks that the server answers and the
# restored database has tables. Everything it started is removed when it ends, however it ends.
# Alerts on failure and says RESOLVED on the next good drill.
#
# Environment (the cron file sets these; see components/backup.py):
#   JAMJAM_BACKUP_NAME   the backup to drill, e.g. thinkring-db-backup
#   JAMJAM_DB_CONTAINER  the live database container, whose image the drill runs
#   JAMJAM_R2_SOURCE     rclone path holding the backup's sets, e.g. r2:thinkring-backups/db/<name>
#   JAMJAM_BACKUP_DIR    used when JAMJAM_R2_SOURCE is empty (default /var/backups/jamjam)
#   JAMJAM_DRILL_MIN_TABLES    tables the restored database must have at least (default 1)
#   JAMJAM_DRILL_MAX_AGE_HOURS the newest dump must be younger than this (0: not checked);
#                              this is the recovery point objective, checked
#   JAMJAM_DRILL_MAX_RESTORE_SECONDS  the restore must finish within this (0: not checked);
#                              the part of the recovery time objective a restore may use
#   JAMJAM_DRILL_MEMORY  memory cap of the throwaway container (default 1g), so a drill cannot
#                        starve the live database
set -euo pipefail
export LC_ALL=C
# rclone's own retries ride out a short R2 or network outage within the run; the environment
# can lower them (the tests do).
export RCLONE_RETRIES="${RCLONE_RETRIES:-3}" RCLONE_LOW_LEVEL_RETRIES="${RCLONE_LOW_LEVEL_RETRIES:-10}"
umask 077

NAME="${JAMJAM_BACKUP_NAME:-}"
CONTAINER="${JAMJAM_DB_CONTAINER:-}"
SOURCE="${JAMJAM_R2_SOURCE:-}"
BACKUP_DIR="${JAMJAM_BACKUP_DIR:-/var/backups/jamjam}"
MIN_TABLES="${JAMJAM_DRILL_MIN_TABLES:-1}"
MAX_AGE_HOURS="${JAMJAM_DRILL_MAX_AGE_HOURS:-0}"
MAX_RESTORE_SECONDS="${JAMJAM_DRILL_MAX_RESTORE_SECONDS:-0}"
MEMORY="${JAMJAM_DRILL_MEMORY:-1g}"
START_TIMEOUT="${JAMJAM_DRILL_START_TIMEOUT:-180}"
RESTORE_TIMEOUT="${JAMJAM_DRILL_RESTORE_TIMEOUT:-14400}"
STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/backup}"
WORK_PARENT="${JAMJAM_DRILL_WORK_DIR:-/var/tmp}"
ALERT="${JAMJAM_ALERT:-/opt/jamjam/scripts/jamjam-alert.sh}"
NOW="${JAMJAM_NOW:-$(date +%s)}"

log() {
  echo "pg-restore-drill: $*" >&2
}

usage() {
  log "$1 (set by the cron file /etc/cron.d/jamjam-<backup>-restore-drill)"
  exit 2
}

[[ -n $NAME ]] || usage "JAMJAM_BACKUP_NAME is not set"
[[ -n $CONTAINER ]] || usage "JAMJAM_DB_CONTAINER is not set"
[[ $NAME =~ ^[a-z0-9][a-z0-9_.-]*$ ]] || usage "JAMJAM_BACKUP_NAME=$NAME must be a lowercase name"
for setting in MIN_TABLES MAX_AGE_HOURS MAX_RESTORE_SECONDS START_TIMEOUT RESTORE_TIMEOUT NOW; do
  [[ ${!setting} =~ ^[0-9]+$ ]] || usage "$setting=${!setting} is not a whole number"
done
[[ $MEMORY =~ ^[1-9][0-9]*[kmg]$ ]] || usage "JAMJAM_DRILL_MEMORY=$MEMORY is not a size like 1g"

incident="restore-drill/$NAME"
open_file="$STATE_DIR/$NAME-restore-drill.alert"
# Unique per run, so a drill never touches another's container, even one left by a crash.
drill="jamjam-drill-$NAME-$$-$RANDOM"
network="$drill"
work=$(mktemp -d "$WORK_PARENT/jamjam-drill.XXXXXX")
started_container=""
started_network=""

cleanup() {
  if [[ -n $started_container ]]; then
    docker rm -f "$drill" >/dev/null 2>&1 || log "could not remove container $drill"
  fi
  if [[ -n $started_network ]]; then
    docker network rm "$network" >/dev/null 2>&1 || log "could not remove network $network"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  log "FAILED: $*"
  mkdir -p "$STATE_DIR"
  : >"$open_file"
  "$ALERT" "$incident" "restore drill of $NAME failed: $*" || true
  exit 1
}

last_line() {
  local text
  text=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  echo "${text:-no error output}"
}

# Dump names end in their UTC time (<name>-YYYYmmddTHHMMSSZ.dump), so the newest sorts last
# across every set of the backup.
newest_of() {
  { grep -E "(^|/)${NAME//./\\.}-[0-9]{8}T[0-9]{6}Z\.dump$" || true; } | awk -F/ '{ print $NF "\t" $0 }' | sort |
    tail -n 1 | cut -f 2
}

if [[ -n $SOURCE ]]; then
  if ! listing=$(rclone lsf -R --files-only "$SOURCE" 2>"$work/list.err"); then
    fail "cannot list $SOURCE: $(last_line "$work/list.err")"
  fi
  path=$(newest_of <<<"$listing")
  [[ -n $path ]] || fail "no dump of $NAME in $SOURCE"
  dump="$work/$(basename "$path")"
  if ! rclone copyto "$SOURCE/$path" "$dump" 2>"$work/fetch.err"; then
    fail "cannot fetch $SOURCE/$path: $(last_line "$work/fetch.err")"
  fi
  origin="$SOURCE/$path"
else
  path=$( (find "$BACKUP_DIR/$NAME" -type f -name "$NAME-*.dump" 2>/dev/null || true) | newest_of)
  [[ -n $path ]] || fail "no dump of $NAME under $BACKUP_DIR/$NAME"
  dump=$path
  origin=$path
fi

stamp=$(basename "$dump" .dump)
stamp=${stamp##*-}
taken=$(date -u -d "${stamp:0:4}-${stamp:4:2}-${stamp:6:2} ${stamp:9:2}:${stamp:11:2}:${stamp:13:2}" +%s)
age_hours=$(( (NOW - taken) / 3600 ))
if (( MAX_AGE_HOURS > 0 && NOW - taken > MAX_AGE_HOURS * 3600 )); then
  fail "the newest dump $origin is ${age_hours} h old, more than the ${MAX_AGE_HOURS} h allowed"
fi

# The image the database runs now, by id: the drill tests the server version that would
# restore it, extensions (PostGIS) included.
if ! image=$(docker inspect --format '{{.Image}}' "$CONTAINER" 2>"$work/inspect.err"); then
  fail "cannot inspect $CONTAINER: $(last_line "$work/inspect.err")"
fi

# --internal: no route in or out; nothing is published. Only `docker exec` reaches the server,
# so it can trust every connection and needs no password.
docker network create --internal "$network" >/dev/null 2>"$work/network.err" ||
  fail "cannot create network $network: $(last_line "$work/network.err")"
started_network=1
# Hardened like the library's database containers: the image's entrypoint needs only to chown
# its data directory and drop to the postgres user.
if ! docker run --rm --detach --name "$drill" --network "$network" \
       --label "jamjam.drill=$NAME" --memory "$MEMORY" --pids-limit 512 \
       --security-opt no-new-privileges=true --cap-drop ALL \
       --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add FOWNER --cap-add SETGID --cap-add SETUID \
       --env POSTGRES_HOST_AUTH_METHOD=trust "$image" >/dev/null 2>"$work/run.err"; then
  # A container created but not started is not removed by --rm.
  docker rm -f "$drill" >/dev/null 2>&1 || true
  fail "cannot start a throwaway $image: $(last_line "$work/run.err")"
fi
started_container=1

in_drill() {
  docker exec "$drill" "$@"
}

# Over TCP on purpose: the image's entrypoint first runs a temporary server on the socket only
# (to initialise), then restarts it; TCP answers only once the real server is up.
started=$(date +%s)
until in_drill pg_isready --host=127.0.0.1 --username=postgres --quiet 2>/dev/null; do
  if (( $(date +%s) - started >= START_TIMEOUT )); then
    fail "the throwaway server did not answer within ${START_TIMEOUT} s"
  fi
  sleep 1
done

started=$(date +%s)
in_drill createdb --host=127.0.0.1 --username=postgres drill 2>"$work/createdb.err" ||
  fail "createdb in the throwaway server: $(last_line "$work/createdb.err")"
if ! timeout "$RESTORE_TIMEOUT" docker exec -i "$drill" pg_restore --host=127.0.0.1 \
       --username=postgres --dbname=drill --no-owner --no-privileges --exit-on-error \
       <"$dump" 2>"$work/restore.err"; then
  fail "pg_restore of $origin: $(last_line "$work/restore.err")"
fi
restore_seconds=$(( $(date +%s) - started ))
if (( MAX_RESTORE_SECONDS > 0 && restore_seconds > MAX_RESTORE_SECONDS )); then
  fail "restoring $origin took ${restore_seconds} s, more than the ${MAX_RESTORE_SECONDS} s allowed"
fi

if ! tables=$(in_drill psql --host=127.0.0.1 --username=postgres --dbname=drill \
                --no-psqlrc --tuples-only --no-align --command \
                "SELECT count(*) FROM information_schema.tables
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema')" \
                2>"$work/query.err"); then
  fail "the restored database does not answer: $(last_line "$work/query.err")"
fi
tables=${tables//[[:space:]]/}
if [[ ! $tables =~ ^[0-9]+$ ]] || (( tables < MIN_TABLES )); then
  fail "the restored database has ${tables:-no} tables, expected at least $MIN_TABLES ($origin)"
fi

log "restored $origin (${age_hours} h old, $(stat -c %s "$dump") bytes) into $image in" \
    "${restore_seconds} s: $tables tables"
if [[ -e $open_file ]]; then
  if "$ALERT" --resolved "$incident" "restore drill of $NAME passes again: $tables tables from $(basename "$dump")"; then
    rm -f "$open_file"
  fi
fi
