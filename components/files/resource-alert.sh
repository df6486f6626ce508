#!/usr/bin/env bash
# Hourly: alerts when the root filesystem or memory is fuller than its threshold, once per
# incident. An incident opens (ALERT) when a metric goes above its threshold and closes
# (RESOLVED) when it is back at or under threshold minus JAMJAM_RESOLVE_MARGIN; in between,
# and while all is well, nothing is sent. The margin keeps memory hovering around the threshold
# from sending an ALERT/RESOLVED pair every other hour.
#
# An incident is recorded as open (a file <metric>.open in the state dir) only once the alert
# was delivered, so with the webhook down the alert is tried again next hour rather than lost.
# A marker that is not a regular file is damaged: it is logged, removed and counts as no
# incident, so at worst an alert is sent twice; it never fails the job hour after hour.
set -euo pipefail

STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/resource-alert}"
ALERT="${JAMJAM_ALERT:-/opt/jamjam/scripts/jamjam-alert.sh}"
DISK_PERCENT="${JAMJAM_DISK_ALERT_PERCENT:-80}"
MEM_PERCENT="${JAMJAM_MEM_ALERT_PERCENT:-90}"
MARGIN="${JAMJAM_RESOLVE_MARGIN:-5}"
# Where to measure; tests point these at a small tmpfs and a meminfo file they write.
DF_ROOT="${JAMJAM_DF_ROOT:-/}"
MEMINFO="${JAMJAM_MEMINFO:-/proc/meminfo}"

log() {
  echo "resource-alert: $*" >&2
}

die() {
  log "$*"
  exit 2
}

# Matched as text, without a leading zero: bash arithmetic reads 060 as octal (48) and fails
# on 08.
for setting in DISK_PERCENT MEM_PERCENT; do
  value=${!setting}
  if [[ ! $value =~ ^[1-9][0-9]?$ ]]; then
    die "JAMJAM_${setting/PERCENT/ALERT_PERCENT}=$value is not a percentage from 1 to 99 (e.g. 80)"
  fi
done
[[ $MARGIN =~ ^(0|[1-9][0-9]?)$ ]] || die "JAMJAM_RESOLVE_MARGIN=$MARGIN is not a whole number of percentage points from 0 to 99 (e.g. 5)"
mkdir -p "$STATE_DIR"

# df's Capacity column, the figure an operator sees when they run `df -h /` to check.
# -P keeps the device name and the numbers on one line however long the name is.
disk_percent() {
  local capacity
  capacity=$(df -P "$DF_ROOT" | awk 'NR == 2 { sub(/%$/, "", $5); print $5 }')
  [[ $capacity =~ ^[0-9]+$ ]] || die "df -P $DF_ROOT gave no usage percentage"
  printf '%s' "$capacity"
}

# MemAvailable, not MemFree: the kernel's own estimate of what can be had without swapping,
# so page cache (which a busy Docker host is full of) does not count as used.
read_meminfo() {
  awk '$1 == "MemTotal:" { total = $2 } $1 == "MemAvailable:" { avail = $2 }
       END { if (total > 0 && avail != "") print total, avail }' "$MEMINFO"
}

human_kib() {
  awk -v kib="$1" 'BEGIN { printf "%.1f GiB", kib / 1048576 }'
}

# Whether <metric>'s incident is open. A damaged marker is repaired here (see the top).
is_open() {
  local open=$1
  [[ -e $open || -L $open ]] || return 1
  if [[ -f $open && ! -L $open ]]; then
    return 0
  fi
  log "incident marker $open is not a regular file; removed it, no incident is open"
  rm -rf -- "$open" || status=1
  return 1
}

# Written aside and renamed, so a marker is whole or absent. One that cannot be written fails
# the run: the alert went out, and will go out again next run.
mark_open() {
  local open=$1
  if { date -u +%Y-%m-%dT%H:%M:%SZ >"$open.tmp"; } 2>/dev/null && mv -fT -- "$open.tmp" "$open"; then
    return 0
  fi
  rm -f -- "$open.tmp" 2>/dev/null || true
  log "could not record the incident in $open; it will be alerted again next run"
  status=1
}

# check <metric> <percent used> <threshold> <alert text> <resolved text>
status=0
check() {
  local metric=$1 used=$2 threshold=$3 alert_text=$4 resolved_text=$5
  local open="$STATE_DIR/$metric.open" since
  if (( used > threshold )); then
    if is_open "$open"; then
      since=$(head -c 64 -- "$open" 2>/dev/null | tr -cd '0-9A-Z:-') || since=""
      log "$metric at $used% (threshold $threshold%); already alerted since ${since:-an unknown time}"
    elif "$ALERT" "$metric" "$alert_text"; then
      mark_open "$open"
    else
      log "$metric alert not delivered; trying again next run"
      status=1
    fi
  elif is_open "$open"; then
    if (( used > threshold - MARGIN )); then
      log "$metric at $used%, under $threshold% but not yet $MARGIN points under; incident stays open"
    elif "$ALERT" --resolved "$metric" "$resolved_text"; then
      rm -f -- "$open" || status=1
    else
      log "$metric resolved message not delivered; trying again next run"
      status=1
    fi
  fi
}

disk=$(disk_percent)
avail_kib=$(df -P "$DF_ROOT" | awk 'NR == 2 { print $4 }')
check disk "$disk" "$DISK_PERCENT" \
  "disk $DF_ROOT is $disk% full (over $DISK_PERCENT%), $(human_kib "$avail_kib") free. Look at \`docker system df\` and \`du -xsh /var/lib/docker/* /var/log\`." \
  "disk $DF_ROOT is back to $disk% full (threshold $DISK_PERCENT%), $(human_kib "$avail_kib") free."

read -r total avail < <(read_meminfo) || die "$MEMINFO has no MemTotal/MemAvailable"
[[ $total =~ ^[1-9][0-9]*$ && $avail =~ ^[0-9]+$ ]] || die "$MEMINFO has no MemTotal/MemAvailable in kB"
memory=$(( (total - avail) * 100 / total ))
check memory "$memory" "$MEM_PERCENT" \
  "memory is $memory% used (over $MEM_PERCENT%), $(human_kib "$avail") of $(human_kib "$total") available. Look at \`docker stats --no-stream\`." \
  "memory is back to $memory% used (threshold $MEM_PERCENT%), $(human_kib "$avail") of $(human_kib "$total") available."
exit "$status"
