#!/usr/bin/env bash
# One scheduled database backup: a full pg_dump of one database, taken inside its container,
# kept on the host for JAMJAM_KEEP_DAYS and copied to R2. Alerts when anything fails, and
# says RESOLVED on the next good run.
#
# pg_dump writes a full, consistent snapshot every time (custom format, compressed); there is
# no differential or incremental mode. A set that runs every 6 hours holds full dumps too.
#
# Environment (the cron file sets these; see components/backup.py):
#   JAMJAM_BACKUP_NAME   the backup's name, e.g. thinkring-db-backup (the db container's
#                        jamjam.backup label names it)
#   JAMJAM_BACKUP_SET    this schedule's name within the backup, e.g. daily or every-6h
#   JAMJAM_DB_CONTAINER  the running PostgreSQL container
#   JAMJAM_DB_NAME, JAMJAM_DB_USER   optional; default: the container's POSTGRES_DB/POSTGRES_USER
#   JAMJAM_KEEP_DAYS     dumps older than this are deleted from the host (never the newest)
#   JAMJAM_BACKUP_DIR    default /var/backups/jamjam; dumps go to <dir>/<name>/<set>/
#   JAMJAM_R2_DEST       optional rclone destination, e.g. r2:thinkring-backups/db/<name>/<set>
#   JAMJAM_OFFSITE_DAYS  how long R2 keeps them (its lifecycle rule); older dumps are not sent
#   RCLONE_CONFIG        the store's rclone config (0600, root only)
#
# The database password never appears on a command line: `docker exec` runs pg_dump with the
# container's own environment, where the official image keeps POSTGRES_PASSWORD.
set -euo pipefail
export LC_ALL=C
# rclone's own retries ride out a short R2 or network outage within the run; the environment
# can lower them (the tests do).
export RCLONE_RETRIES="${RCLONE_RETRIES:-3}" RCLONE_LOW_LEVEL_RETRIES="${RCLONE_LOW_LEVEL_RETRIES:-10}"
umask 077

NAME="${JAMJAM_BACKUP_NAME:-}"
SET="${JAMJAM_BACKUP_SET:-}"
CONTAINER="${JAMJAM_DB_CONTAINER:-}"
DB_NAME="${JAMJAM_DB_NAME:-}"
DB_USER="${JAMJAM_DB_USER:-}"
KEEP_DAYS="${JAMJAM_KEEP_DAYS:-}"
BACKUP_DIR="${JAMJAM_BACKUP_DIR:-/var/backups/jamjam}"
DEST="${JAMJAM_R2_DEST:-}"
OFFSITE_DAYS="${JAMJAM_OFFSITE_DAYS:-}"
STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/backup}"
ALERT="${JAMJAM_ALERT:-/opt/jamjam/scripts/jamjam-alert.sh}"
# A dump that hangs (a lock held for hours) must not hold the job's flock for ever.
DUMP_TIMEOUT="${JAMJAM_DUMP_TIMEOUT:-14400}"
UPLOAD_TIMEOUT="${JAMJAM_UPLOAD_TIMEOUT:-14400}"

log() {
  echo "pg-backup: $*" >&2
}

usage() {
  log "$1 (set by the cron file /etc/cron.d/jamjam-<backup>-<set>; e.g. JAMJAM_KEEP_DAYS=7)"
  exit 2
}

declare -A variable=([NAME]=JAMJAM_BACKUP_NAME [SET]=JAMJAM_BACKUP_SET
                     [CONTAINER]=JAMJAM_DB_CONTAINER [KEEP_DAYS]=JAMJAM_KEEP_DAYS)
for setting in NAME SET CONTAINER KEEP_DAYS; do
  [[ -n ${!setting} ]] || usage "${variable[$setting]} is not set"
done
[[ $SET =~ ^[a-z0-9][a-z0-9-]*$ && $NAME =~ ^[a-z0-9][a-z0-9_.-]*$ ]] ||
  usage "JAMJAM_BACKUP_NAME=$NAME / JAMJAM_BACKUP_SET=$SET must be lowercase names"
for setting in KEEP_DAYS DUMP_TIMEOUT UPLOAD_TIMEOUT; do
  if [[ ! ${!setting} =~ ^[0-9]+$ ]] || (( ${!setting} == 0 )); then
    usage "$setting=${!setting} is not a positive whole number"
  fi
done
if [[ -n $DEST ]] && [[ ! $OFFSITE_DAYS =~ ^[1-9][0-9]*$ ]]; then
  usage "JAMJAM_OFFSITE_DAYS=$OFFSITE_DAYS must be a positive whole number when JAMJAM_R2_DEST is set"
fi

incident="backup/$NAME/$SET"
open_file="$STATE_DIR/$NAME-$SET.alert"
dir="$BACKUP_DIR/$NAME/$SET"
work=$(mktemp -d)
partial=""
cleanup() {
  rm -rf "$work"
  [[ -z $partial ]] || rm -f "$partial"
}
trap cleanup EXIT

# An incident stays open (state file) until a good run closes it, so a failure is reported
# at every failed run and the recovery once.
fail() {
  log "FAILED: $*"
  mkdir -p "$STATE_DIR"
  : >"$open_file"
  "$ALERT" "$incident" "backup of $CONTAINER ($SET) failed: $*" || true
  exit 1
}

last_line() {
  local text
  text=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1 || true)
  echo "${text:-no error output}"
}

mkdir -p "$dir" "$STATE_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$dir/$NAME-$stamp.dump"
partial="$dir/.$NAME-$stamp.dump.partial"

# Runs inside the container. $1/$2 are the user and database (empty: the container's own),
# the password comes from the container's environment or its *_FILE variant.
# shellcheck disable=SC2016  # expanded by the container's shell, not this one
dump='if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
if [ -n "${POSTGRES_PASSWORD:-}" ]; then export PGPASSWORD="$POSTGRES_PASSWORD"; fi
user=${1:-${POSTGRES_USER:-postgres}}
exec pg_dump --format=custom --compress=6 --no-password --username="$user" --dbname="${2:-${POSTGRES_DB:-$user}}"'

started=$(date +%s)
if ! timeout "$DUMP_TIMEOUT" docker exec "$CONTAINER" sh -c "$dump" sh "$DB_USER" "$DB_NAME" \
       >"$partial" 2>"$work/dump.err"; then
  fail "pg_dump in $CONTAINER: $(last_line "$work/dump.err")"
fi
[[ -s $partial ]] || fail "pg_dump in $CONTAINER wrote nothing"
# Reading the whole archive back (pg_restore to /dev/null) catches a dump cut short, which a
# look at its table of contents would not: the TOC is written first.
if ! timeout "$DUMP_TIMEOUT" docker exec -i "$CONTAINER" pg_restore --file=/dev/null \
       <"$partial" 2>"$work/check.err"; then
  fail "the new dump does not read back: $(last_line "$work/check.err")"
fi
sync "$partial"
mv -f "$partial" "$final"
partial=""
size=$(stat -c %s "$final")
log "dumped $CONTAINER to $final ($size bytes, $(( $(date +%s) - started )) s)"

# Local retention, by age. It runs only after a good dump (a failure exits above), so a backup
# that has been failing for longer than the retention keeps the last good dumps it had; the
# new one is spared whatever its clock says. Partial files left by a killed run go after a day.
newest=$(basename "$final")
find "$dir" -maxdepth 1 -type f -name "$NAME-*.dump" ! -name "$newest" \
  -mmin +$(( KEEP_DAYS * 1440 )) -print -delete | sed 's/^/pg-backup: expired /' >&2
find "$dir" -maxdepth 1 -type f -name ".$NAME-*.dump.partial" -mmin +1440 -delete

if [[ -n $DEST ]]; then
  # Every local dump younger than R2's retention that R2 does not have yet: a dump whose
  # upload failed goes with the next run. Older ones would only be expired again at once.
  if ! timeout "$UPLOAD_TIMEOUT" rclone copy "$dir" "$DEST" --include "$NAME-*.dump" \
         --max-age "${OFFSITE_DAYS}d" \
         2>"$work/upload.err"; then
    fail "copy to $DEST failed, the dump is kept on the host: $(last_line "$work/upload.err")"
  fi
  log "copied to $DEST"
fi

if [[ -e $open_file ]]; then
  if "$ALERT" --resolved "$incident" "backup of $CONTAINER ($SET) works again: $newest"; then
    rm -f "$open_file"
  fi
fi
