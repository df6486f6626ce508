#!/usr/bin/env bash
# Turns the distribution's unattended-upgrades on in the maintenance window (apply), or hands
# the host back exactly as it was (remove).
#
#   os-updates.sh apply    makes sure unattended-upgrades is installed, moves its nightly run
#                          into the window (a systemd drop-in) and tells systemd
#   os-updates.sh remove   takes the drop-in away, tells systemd, and uninstalls the package
#                          again if apply was what installed it (purged if the host never
#                          had it, back to "removed, settings kept" if that is how it was)
#
# One owner per file. The apt settings (security origins only, the daily switches, reboots)
# are in /etc/apt/apt.conf.d/52jamjam-unattended-upgrades, which Pulumi writes and deletes; it
# sorts after, and so overrides, the distribution's own 10periodic, 20auto-upgrades and
# 50unattended-upgrades, which nothing here ever writes or deletes. This script owns the
# drop-in below and the record of the package it installed. So removing the component leaves
# the distribution's files as they were, and with them its own choice of automatic updates.
set -euo pipefail

# Tests run the script against a temporary tree instead of /.
ROOT="${JAMJAM_ROOT:-}"
DROPIN_DIR="$ROOT/etc/systemd/system/apt-daily-upgrade.timer.d"
DROPIN="$DROPIN_DIR/jamjam-os-updates.conf"
# "not-installed" or "config-files": what dpkg said of the package before apply installed it.
PACKAGE_RECORD="$ROOT/var/lib/jamjam/os-updates/unattended-upgrades-before"
PACKAGE=unattended-upgrades
export DEBIAN_FRONTEND=noninteractive

# Pulumi runs independent commands at the same time, and apt-get update does not wait for
# another one's lock (DPkg::Lock::Timeout covers dpkg's lock only): every jamjam script takes
# this lock around apt-get, so two of them on one host wait for each other (the rehearsal
# caught two installs colliding).
APT_LOCK="${JAMJAM_APT_LOCK:-/run/lock/jamjam-apt.lock}"
apt_get() {
  flock -w 600 "$APT_LOCK" apt-get "$@"
}

log() {
  echo "os-updates: $*" >&2
}

usage() {
  echo "usage: os-updates.sh apply | remove (for example: os-updates.sh apply)" >&2
  exit 2
}

window() {
  cat <<'EOF'
# Managed by Pulumi (jamjam-infra) through jamjam-os-updates; removed with the OS updates job.
#
# Moves the nightly unattended-upgrades run into the 03:00-04:00 maintenance window (host time).
[Timer]
# An empty assignment first: OnCalendar adds to the distribution's 06:00 schedule otherwise.
OnCalendar=
OnCalendar=*-*-* 03:00
# Starts between 03:00 and 03:20, not at a fixed second: spreads the load on the mirrors (the
# distribution's default does the same, with 60 minutes). Only 20 minutes so that the upgrade
# (a few minutes) is over by the automatic reboot at 03:30 and everything stays inside the window.
RandomizedDelaySec=20m
# No catch-up run at boot after a night the host was down: that would upgrade (and perhaps
# reboot) at whatever hour it comes back. The next night's run picks up what was missed.
Persistent=false
EOF
}

# dpkg's word for the package's state: installed, config-files (removed, settings kept) or
# not-installed (never installed, or purged).
package_state() {
  local status
  status=$(dpkg-query -W -f '${Status}' "$PACKAGE" 2>/dev/null) || status=""
  case $status in
    *" ok installed") echo installed ;;
    *" config-files") echo config-files ;;
    *) echo not-installed ;;
  esac
}

# The timer keeps its old schedule until systemd rereads the unit and the timer restarts.
reload_timer() {
  systemctl daemon-reload
  systemctl restart apt-daily-upgrade.timer
}

apply() {
  local before tmp
  before=$(package_state)
  if [[ $before != installed ]]; then
    # Recorded before the install, so that remove knows what to undo even if it dies half
    # way; and never over an earlier record: after such a failure dpkg's answer is no longer
    # what the host had before.
    if [[ ! -f $PACKAGE_RECORD ]]; then
      mkdir -p "${PACKAGE_RECORD%/*}"
      printf '%s\n' "$before" >"$PACKAGE_RECORD.tmp"
      mv -fT -- "$PACKAGE_RECORD.tmp" "$PACKAGE_RECORD"
    fi
    apt_get update -q
    apt_get install -y -q "$PACKAGE"
    log "installed $PACKAGE (it was $before); remove uninstalls it again"
  fi
  mkdir -p "$DROPIN_DIR"
  tmp="$DROPIN_DIR/.jamjam-os-updates.conf.tmp"
  window >"$tmp"
  chmod 0644 "$tmp"
  mv -fT -- "$tmp" "$DROPIN"
  # Every time, not only when the drop-in changed: a run that died before this line would
  # otherwise leave systemd on the old schedule for good.
  reload_timer
}

remove() {
  local before undo
  rm -f -- "$DROPIN" "$DROPIN_DIR/.jamjam-os-updates.conf.tmp"
  # The directory only if nothing else (an operator's own drop-in) is in it.
  rmdir -- "$DROPIN_DIR" 2>/dev/null || true
  reload_timer
  if [[ -f $PACKAGE_RECORD ]]; then
    read -r before <"$PACKAGE_RECORD" || before=""
    # dpkg, not apt-get: apt-get -y would also remove whatever has come to depend on the
    # package since; dpkg refuses, and then the package stays.
    case $before in
      # Purged: its install wrote 20auto-upgrades and 50unattended-upgrades, which a host
      # without the package did not have.
      not-installed) undo=--purge ;;
      # Purging would delete settings that were there before.
      config-files) undo=--remove ;;
      *) undo="" ;;
    esac
    if [[ -z $undo ]]; then
      log "$PACKAGE_RECORD holds ${before@Q}, not not-installed or config-files; leaving $PACKAGE installed"
    elif [[ $(package_state) != installed ]]; then
      : # uninstalled by hand meanwhile
    elif ! dpkg "$undo" "$PACKAGE"; then
      log "dpkg would not $undo $PACKAGE (see above); leaving it installed"
    fi
    rm -f -- "$PACKAGE_RECORD"
    # The record's directory, and /var/lib/jamjam if no other job keeps state there.
    rmdir -- "${PACKAGE_RECORD%/*}" "${PACKAGE_RECORD%/*/*}" 2>/dev/null || true
  fi
}

[[ $# -eq 1 ]] || usage
case $1 in
  apply) apply ;;
  remove) remove ;;
  *) usage ;;
esac
