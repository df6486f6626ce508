#!/usr/bin/env bash
# Hourly: alerts when the root filesystem or memory is fuller than its threshold, once per
# incident. An incident opens (ALERT) when a metric goes above its threshold and closes
# (RESOLVED) when it is back at or under threshold minus JAMJAM_RESOLVE_MARGIN; in between,
# and while all is well, nothing is sent. The margin keeps memory hovering around the threshold
# from sending an ALERT/RESOLVED pair every other hour.
#
# An incident is recorded as open (a file <metric>.open in the state dir) only once the alert
# was delivered, so with the webhook down the alert is tried again next hour rather than lost.
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

for setting in DISK_PERCENT MEM_PERCENT; do
  value=${!setting}
  if [[ ! $value =~ ^[0-9]+$ ]] || (( value < 1 || value > 99 )); then
    die "JAMJAM_${setting/PERCENT/ALERT_PERCENT}=$value is not a percentage from 1 to 99 (e.g. 80)"
  fi
done
[[ $MARGIN =~ ^[0-9]+$ ]] || die "JAMJAM_RESOLVE_MARGIN=$MARGIN is not a whole number of percentage points (e.g. 5)"
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

# check <metric> <percent used> <threshold> <alert text> <resolved text>
status=0
check() {
  local metric=$1 used=$2 threshold=$3 alert_text=$4 resolved_text=$5
  local open="$STATE_DIR/$metric.open"
  if (( used > threshold )); then
    if [[ -e $open ]]; then
      log "$metric at $used% (threshold $threshold%); already alerted since $(cat "$open")"
    elif "$ALERT" "$metric" "$alert_text"; then
      date -u +%Y-%m-%dT%H:%M:%SZ >"$open"
    else
      log "$metric alert not delivered; trying again next run"
      status=1
    fi
  elif [[ -e $open ]]; then
    if (( used > threshold - MARGIN )); then
      log "$metric at $used%, under $threshold% but not yet $MARGIN points under; incident stays open"
    elif "$ALERT" --resolved "$metric" "$resolved_text"; then
      rm -f "$open"
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
memory=$(( (total - avail) * 100 / total ))
check memory "$memory" "$MEM_PERCENT" \
  "memory is $memory% used (over $MEM_PERCENT%), $(human_kib "$avail") of $(human_kib "$total") available. Look at \`docker stats --no-stream\`." \
  "memory is back to $memory% used (threshold $MEM_PERCENT%), $(human_kib "$avail") of $(human_kib "$total") available."
exit "$status"
