#!/usr/bin/env bash
# Turns the distribution's unattended-upgrades on (apply) or hands the host back to its
# defaults (remove FILE...). The configuration itself is in files Pulumi writes next to this
# one; this script only makes sure the package is there and systemd sees the timer window.
set -euo pipefail

usage() {
  echo "usage: os-updates.sh apply | remove FILE... (for example: os-updates.sh apply)" >&2
  exit 2
}

reload_timer() {
  systemctl daemon-reload
  # The timer keeps its old schedule until restarted.
  systemctl restart apt-daily-upgrade.timer apt-daily.timer
}

[ "$#" -ge 1 ] || usage
case "$1" in
  apply)
    [ "$#" -eq 1 ] || usage
    if ! dpkg-query -W -f '${Status}' unattended-upgrades 2>/dev/null | grep -q "ok installed"; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q unattended-upgrades
    fi
    reload_timer
    ;;
  remove)
    shift
    [ "$#" -ge 1 ] || usage
    for file in "$@"; do
      case "$file" in
        /etc/apt/apt.conf.d/*jamjam* | /etc/apt/apt.conf.d/20auto-upgrades | \
          /etc/systemd/system/apt-daily-upgrade.timer.d/jamjam-*) rm -f -- "$file" ;;
        *) echo "os-updates.sh: refusing to remove $file: not a file this job manages" >&2; exit 2 ;;
      esac
    done
    reload_timer
    ;;
  *) usage ;;
esac
