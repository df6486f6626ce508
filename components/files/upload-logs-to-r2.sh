#!/usr/bin/env bash
# Ships Docker json-file container logs to R2, every byte exactly once.
#
# Installed at /opt/jamjam/scripts/upload-logs-to-r2.sh and run hourly by cron. Each run:
#   1. for each container, reads the bytes written since the last run from <id>-json.log and
#      from the files Docker rotated it into (<id>-json.log.1..N), tracking progress per inode
#      and offset, so rotation between runs loses nothing and nothing is read twice;
#   2. writes them as gzip chunks to a local spool (tmp file, fsync, rename), and only then
#      records the new offset, so a crash at any point either left the chunk out or kept it;
#   3. moves the spool to R2 with rclone, which deletes a chunk only once its upload is
#      confirmed. Chunk names derive from inode and offsets, so a retried upload overwrites the
#      same object instead of adding a second copy.
# Whatever cannot be uploaded stays in the spool for the next run, and the run exits non-zero.
set -euo pipefail
shopt -s nullglob

LOG_DIR="${JAMJAM_LOG_DIR:-/var/lib/docker/containers}"
SPOOL_DIR="${JAMJAM_SPOOL_DIR:-/var/spool/jamjam-logs}"
STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/log-archive}"
DEST="${JAMJAM_R2_DEST:-r2:jamjam-logs}"
STACK="${JAMJAM_STACK:-production}"
HOST="${JAMJAM_HOST:-$(uname -n)}"
HOST="${HOST%%.*}"
# A full spool means R2 has been unreachable for a long time; past this, the logs wait on
# Docker's own disk budget (max-size x max-file) instead of filling the disk twice.
SPOOL_MAX_BYTES="${JAMJAM_SPOOL_MAX_BYTES:-1073741824}"
# Bounds one object (and one gzip's memory and time) on the first run over a full log history.
CHUNK_MAX_BYTES="${JAMJAM_CHUNK_MAX_BYTES:-67108864}"
export RCLONE_CONFIG="${RCLONE_CONFIG:-/etc/jamjam/rclone.conf}"
# rclone takes any flag as RCLONE_<FLAG>; set here as defaults so an operator (or a test)
# can change them without editing the script.
export RCLONE_RETRIES="${RCLONE_RETRIES:-3}"
export RCLONE_RETRIES_SLEEP="${RCLONE_RETRIES_SLEEP:-10s}"
export RCLONE_LOW_LEVEL_RETRIES="${RCLONE_LOW_LEVEL_RETRIES:-10}"
export RCLONE_CONTIMEOUT="${RCLONE_CONTIMEOUT:-15s}"
export RCLONE_TIMEOUT="${RCLONE_TIMEOUT:-5m}"

# How much of a file's head identifies it: inode numbers are reused once Docker deletes the
# oldest rotated file, and a reused inode must not inherit the old file's offset.
FINGERPRINT_BYTES=4096
# ship_container's exit status when the spool has no room left.
SPOOL_FULL=3

log() {
  printf '%s upload-logs-to-r2: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

die() {
  log "$*"
  exit 1
}

for setting in SPOOL_MAX_BYTES CHUNK_MAX_BYTES; do
  if [[ ! ${!setting} =~ ^[0-9]+$ ]] || (( ${!setting} == 0 )); then
    die "JAMJAM_${setting}=${!setting} is not a positive number of bytes (e.g. 1073741824)"
  fi
done

# Object keys are read by people with `rclone ls`: keep them to characters that need no quoting.
safe_name() {
  local value="${1//[^A-Za-z0-9_.-]/_}"
  printf '%s' "${value:-unknown}"
}
STACK="$(safe_name "$STACK")"
HOST="$(safe_name "$HOST")"

mkdir -p "$SPOOL_DIR" "$STATE_DIR/containers"
# Cron already runs this under flock, but a run started by hand (or a second cron entry)
# would read the same offsets and ship the same bytes twice.
exec {lock_fd}>"$STATE_DIR/lock"
if ! flock -n "$lock_fd"; then
  log "another run holds $STATE_DIR/lock; it ships this hour's logs, so this one stops"
  exit 0
fi

# Left by a run that was killed mid-write; the lock proves that run is over, and its offsets
# were never advanced past these files.
rm -f "$SPOOL_DIR"/.incoming-* "$STATE_DIR"/containers/.*.tmp

spool_bytes() {
  find "$SPOOL_DIR" -type f -name '*.log.gz' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}

spool_chunks() {
  find "$SPOOL_DIR" -type f -name '*.log.gz' | wc -l
}

# The rename is atomic but not durable by itself: without these fsyncs a power cut could keep
# the new offset and lose the chunk it stands for.
durable_rename() {
  sync "$1"
  mv -f "$1" "$2"
  sync "$(dirname "$2")"
}

upload_spool() {
  if (( $(spool_chunks) == 0 )); then
    return 0
  fi
  # move, not rcat: each chunk is a file rclone can retry, checks after upload (size and MD5)
  # and only then deletes. An object already uploaded by a killed run is found identical
  # and not sent again.
  # Not --no-traverse: listing the few day directories in the spool first makes a run against
  # an unreachable R2 fail in seconds, instead of backing off on every chunk in turn.
  rclone move "$SPOOL_DIR" "$DEST" --include '*.log.gz' --delete-empty-src-dirs
}

fingerprint() {
  local fd=$1 length=$2 sum
  if (( length == 0 )); then
    printf -- '-'
    return
  fi
  read -r sum _ < <(dd if="/dev/fd/$fd" iflag=count_bytes count="$length" bs=64K status=none | md5sum)
  printf '%s' "$sum"
}

container_name() {
  local config="$1/config.v2.json" name=""
  if [[ -r $config ]]; then
    # Docker writes this file as one line of compact JSON; the container's own "Name" is the
    # only one that starts with a slash. No jq: it is not on a minimal VPS.
    name=$(grep -o '"Name":"/[^"]*"' "$config" | sed -n '1s|^"Name":"/\(.*\)"$|\1|p') || name=""
  fi
  printf '%s' "$name"
}

# Writes the calling ship_container's progress: one line per file, "inode offset length md5",
# the md5 being of the file's first <length> bytes.
save_state() {
  local tmp="$STATE_DIR/containers/.$id.tmp" i
  for i in "${!offset[@]}"; do
    printf '%s %s %s %s\n' "$i" "${offset[$i]}" "${fp_length[$i]}" "${fp[$i]}"
  done >"$tmp"
  durable_rename "$tmp" "$state"
}

# One container: find its log files, ship what is new in each. Runs in a subshell of its own
# so one container's failure (set -e) ends only that container.
ship_container() {
  local dir=$1 id short name state
  id=${dir##*/}
  short=${id:0:12}
  name=$(container_name "$dir")
  name=$(safe_name "${name:-$short}")
  state="$STATE_DIR/containers/$id"

  local -A offset=() fp_length=() fp=() seen=() rotated=() fds=()
  local inode off length sum
  if [[ -f $state ]]; then
    while read -r inode off length sum; do
      # A damaged line is dropped: that file is read again from the start, which duplicates
      # rather than loses.
      [[ $inode =~ ^[0-9]+$ && $off =~ ^[0-9]+$ && $length =~ ^[0-9]+$ && -n $sum ]] || continue
      offset[$inode]=$off
      fp_length[$inode]=$length
      fp[$inode]=$sum
    done <"$state"
  fi

  # Newest first: Docker rotates by renaming towards higher numbers, so a rotation during this
  # scan can show us a file twice (deduplicated by inode) but never hide one from us.
  local base="$dir/$id-json.log" path highest=0 suffix n fd
  for path in "$base".*; do
    suffix=${path##*.}
    if [[ $suffix =~ ^[0-9]+$ ]] && (( 10#$suffix > highest )); then
      highest=$(( 10#$suffix ))
    elif [[ $suffix == gz ]]; then
      log "$name: compressed rotated log $path is not read; set the json-file option compress=false"
    fi
  done
  local order=()
  for (( n = 0; n <= highest + 1; n++ )); do
    path=$base
    (( n == 0 )) || path="$base.$n"
    [[ -e $path ]] || continue
    # An open descriptor keeps the file readable even if Docker rotates it away meanwhile.
    exec {fd}<"$path" || continue
    read -r inode _ < <(stat -L -c '%i %s' "/dev/fd/$fd")
    if [[ -n ${seen[$inode]:-} ]]; then
      exec {fd}<&-
    else
      seen[$inode]=1
      fds[$inode]=$fd
      order=("$inode" "${order[@]}")
    fi
    # Docker writes only to the active file: a rotated one is complete, even its last line.
    (( n == 0 )) || rotated[$inode]=1
  done

  local size start end window last partial existing candidate chunk_end rel tmp bytes used
  for inode in "${order[@]}"; do
    fd=${fds[$inode]}
    read -r _ size < <(stat -L -c '%i %s' "/dev/fd/$fd")
    start=${offset[$inode]:-0}
    if (( start > 0 )); then
      sum=$(fingerprint "$fd" "${fp_length[$inode]}")
      if (( size < start )) || [[ $sum != "${fp[$inode]}" ]]; then
        log "$name: inode $inode is a different file than last run (reused or truncated); reading it from the start"
        start=0
        offset[$inode]=0
        fp_length[$inode]=0
        fp[$inode]=-
      fi
    fi

    while (( start < size )); do
      # A chunk written to the spool by a run killed before it could record the offset:
      # take it as shipped only if it holds exactly these bytes (a chunk of an earlier file
      # with the same, reused, inode starts the same but differs).
      existing=""
      while IFS= read -r -d '' candidate; do
        chunk_end=${candidate##*/"$short-$inode-$start-"}
        chunk_end=${chunk_end%%-*}
        if [[ $chunk_end =~ ^[0-9]+$ ]] && (( chunk_end > start && chunk_end <= size )) &&
          cmp -s <(gzip -dc "$candidate") \
            <(dd if="/dev/fd/$fd" iflag=skip_bytes,count_bytes skip="$start" \
              count=$((chunk_end - start)) bs=1M status=none); then
          existing=$candidate
          break
        fi
      done < <(find "$SPOOL_DIR" -type f -name "$short-$inode-$start-*.log.gz" -print0)
      if [[ -n $existing ]]; then
        log "$name: ${existing#"$SPOOL_DIR"/} was spooled by an interrupted run; keeping it"
        start=$chunk_end
      else
        window=$(( size - start < CHUNK_MAX_BYTES ? size - start : CHUNK_MAX_BYTES ))
        end=$(( start + window ))
        if [[ -z ${rotated[$inode]:-} ]] || (( end < size )); then
          # Whole lines only: the line Docker is still writing ships next run.
          last=$(dd if="/dev/fd/$fd" iflag=skip_bytes,count_bytes skip=$((end - 1)) count=1 \
                 status=none | od -An -tx1)
          if [[ $last != *0a* ]]; then
            partial=$(dd if="/dev/fd/$fd" iflag=skip_bytes,count_bytes skip="$start" \
                      count="$window" bs=1M status=none | tail -n 1 | wc -c)
            if (( partial < window )); then
              end=$(( end - partial ))
            elif (( window < CHUNK_MAX_BYTES )); then
              break
            fi
            # else: one line longer than a whole chunk; ship it split rather than never.
          fi
        fi

        tmp="$SPOOL_DIR/.incoming-$BASHPID.gz"
        dd if="/dev/fd/$fd" iflag=skip_bytes,count_bytes skip="$start" count=$((end - start)) \
          bs=1M status=none | gzip -n -c >"$tmp"
        # Read it back: a short read or a bad write must not become an object, or an offset.
        bytes=$(gzip -dc "$tmp" | wc -c)
        (( bytes == end - start )) || die "$name: read $bytes of $((end - start)) bytes from inode $inode; will retry next run"
        # Offsets name the bytes; the content hash keeps a file that got a deleted file's
        # inode number from overwriting that file's object.
        read -r sum _ < <(gzip -dc "$tmp" | md5sum)
        rel="$STACK/$HOST/$name/$(date -u +%F)/$short-$inode-$start-$end-${sum:0:8}.log.gz"
        used=$(spool_bytes)
        if (( used + $(stat -c %s "$tmp") > SPOOL_MAX_BYTES )); then
          rm -f "$tmp"
          save_state
          exit "$SPOOL_FULL"
        fi
        mkdir -p "$SPOOL_DIR/${rel%/*}"
        durable_rename "$tmp" "$SPOOL_DIR/$rel"
        start=$end
      fi
      offset[$inode]=$start
      length=$(( start < FINGERPRINT_BYTES ? start : FINGERPRINT_BYTES ))
      if (( length != ${fp_length[$inode]:-0} )); then
        fp_length[$inode]=$length
        fp[$inode]=$(fingerprint "$fd" "$length")
      fi
      save_state
    done
  done

  # Forget files Docker has deleted. A file is kept if this scan or a fresh one sees it, so a
  # rotation during the run cannot make us forget a file that still exists.
  for path in "$base" "$base".*; do
    [[ -e $path ]] && seen[$(stat -c %i "$path")]=1
  done
  for inode in "${!offset[@]}"; do
    [[ -n ${seen[$inode]:-} ]] || unset "offset[$inode]"
  done
  save_state
}

status=0
if [[ ! -d $LOG_DIR ]]; then
  # Without the directory every container would look removed and lose its progress.
  log "$LOG_DIR does not exist; uploading the spool only"
  status=1
else
  tried_upload=0
  for dir in "$LOG_DIR"/*/; do
    dir=${dir%/}
    [[ -e "$dir/${dir##*/}-json.log" ]] || continue
    while true; do
      ship_container "$dir" &
      if wait "$!"; then rc=0; else rc=$?; fi
      if (( rc == SPOOL_FULL && ! tried_upload )); then
        # Make room by uploading what is waiting, then try this container again.
        tried_upload=1
        upload_spool || true
        continue
      fi
      break
    done
    if (( rc == SPOOL_FULL )); then
      log "spool full: $(spool_bytes) bytes in $SPOOL_DIR, cap JAMJAM_SPOOL_MAX_BYTES=$SPOOL_MAX_BYTES;" \
          "not reading more logs this run. Progress is kept, so nothing is lost while Docker still" \
          "has the files (max-size x max-file); check that $DEST is reachable"
      status=1
      break
    elif (( rc != 0 )); then
      log "container ${dir##*/}: failed (exit $rc); carrying on with the others"
      status=1
    fi
  done

  for state in "$STATE_DIR"/containers/*; do
    id=${state##*/}
    if [[ ! -d "$LOG_DIR/$id" ]]; then
      rm -f "$state"
      log "container $id is gone; dropped its progress (its spooled chunks still upload)"
    fi
  done
fi

if ! upload_spool; then
  log "upload to $DEST failed"
fi
left=$(spool_chunks)
if (( left > 0 )); then
  log "$left chunk(s), $(spool_bytes) bytes, left in $SPOOL_DIR for the next run"
  status=1
fi
exit "$status"
