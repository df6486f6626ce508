#!/usr/bin/env bash
# A scheduled off-site copy of one host directory to a prefix of an R2 bucket (rclone).
# Alerts when a run fails and says RESOLVED on the next good one.
#
#   mode copy: new and changed files go up; nothing in R2 is ever deleted.
#   mode sync: R2 mirrors the directory. A file deleted or overwritten on the host is not lost:
#              rclone moves R2's old copy under JAMJAM_SYNC_DELETED_DEST (when set), where the
#              bucket's lifecycle rule expires it.
#
# Environment (the cron file sets these; see components/dir_sync.py):
#   JAMJAM_SYNC_NAME     the job's name, e.g. recordings (alert key sync/<name>)
#   JAMJAM_SYNC_SOURCE   the host directory, e.g. /srv/rstream/recordings
#   JAMJAM_R2_DEST       e.g. r2:rstream-backups/recordings
#   JAMJAM_SYNC_MODE     copy or sync
#   JAMJAM_SYNC_DELETED_DEST  sync mode only, optional: e.g. r2:rstream-backups/deleted/recordings
#   JAMJAM_SYNC_MAX_AGE_DAYS  optional: only files changed within this many days go up (files
#                        the host keeps longer than R2's lifecycle rule would come back daily)
#   RCLONE_CONFIG        the store's rclone config (0600, root only)
set -euo pipefail
export LC_ALL=C
# rclone's own retries ride out a short R2 or network outage within the run; the environment
# can lower them (the tests do).
export RCLONE_RETRIES="${RCLONE_RETRIES:-3}" RCLONE_LOW_LEVEL_RETRIES="${RCLONE_LOW_LEVEL_RETRIES:-10}"

NAME="${JAMJAM_SYNC_NAME:-}"
SOURCE="${JAMJAM_SYNC_SOURCE:-}"
DEST="${JAMJAM_R2_DEST:-}"
MODE="${JAMJAM_SYNC_MODE:-copy}"
DELETED_DEST="${JAMJAM_SYNC_DELETED_DEST:-}"
STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/sync}"
ALERT="${JAMJAM_ALERT:-/opt/jamjam/scripts/jamjam-alert.sh}"
TIMEOUT="${JAMJAM_SYNC_TIMEOUT:-14400}"
MAX_AGE_DAYS="${JAMJAM_SYNC_MAX_AGE_DAYS:-}"

log() {
  echo "sync-dir-to-r2: $*" >&2
}

usage() {
  log "$1 (set by the cron file /etc/cron.d/jamjam-sync-<name>)"
  exit 2
}

[[ $NAME =~ ^[a-z0-9][a-z0-9_.-]*$ ]] || usage "JAMJAM_SYNC_NAME=$NAME must be a lowercase name"
[[ $SOURCE == /* ]] || usage "JAMJAM_SYNC_SOURCE=$SOURCE must be an absolute path"
[[ $DEST == *:* ]] || usage "JAMJAM_R2_DEST=$DEST must be an rclone path like r2:bucket/prefix"
[[ $MODE == copy || $MODE == sync ]] || usage "JAMJAM_SYNC_MODE=$MODE must be copy or sync"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage "JAMJAM_SYNC_TIMEOUT=$TIMEOUT is not a positive whole number"
[[ -z $MAX_AGE_DAYS || $MAX_AGE_DAYS =~ ^[1-9][0-9]*$ ]] ||
  usage "JAMJAM_SYNC_MAX_AGE_DAYS=$MAX_AGE_DAYS is not a positive whole number"

incident="sync/$NAME"
open_file="$STATE_DIR/$NAME.alert"
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

fail() {
  log "FAILED: $*"
  mkdir -p "$STATE_DIR"
  : >"$open_file"
  "$ALERT" "$incident" "off-site copy of $SOURCE failed: $*" || true
  exit 1
}

# A missing or empty source is far more often an unmounted volume or a renamed directory than
# a real deletion of everything; mirroring it would empty the bucket's copy.
[[ -d $SOURCE ]] || fail "$SOURCE is not a directory"
if [[ $MODE == sync ]] && [[ -z $(find "$SOURCE" -mindepth 1 -print -quit) ]]; then
  fail "$SOURCE is empty; not mirroring an empty directory over $DEST (sync it by hand if meant)"
fi

args=(--stats-one-line --stats 0)
if [[ -n $MAX_AGE_DAYS ]]; then
  args+=(--max-age "${MAX_AGE_DAYS}d")
fi
if [[ $MODE == sync && -n $DELETED_DEST ]]; then
  args+=(--backup-dir "$DELETED_DEST/$(date -u +%Y-%m-%d)")
fi
if ! timeout "$TIMEOUT" rclone "$MODE" "$SOURCE" "$DEST" "${args[@]}" -v 2>"$errors"; then
  tail -n 5 "$errors" >&2
  fail "rclone $MODE to $DEST: $(grep -E 'ERROR|Failed' "$errors" | tail -n 1 || true)"
fi
grep -E 'Transferred:|Deleted:' "$errors" | tail -n 2 | sed 's/^/sync-dir-to-r2: /' >&2 || true

if [[ -e $open_file ]]; then
  if "$ALERT" --resolved "$incident" "off-site copy of $SOURCE to $DEST works again"; then
    rm -f "$open_file"
  fi
fi
