#!/usr/bin/env bash
# CI's alerts go through the host's own sender (components/files/jamjam-alert.sh), so they read
# like every other jamjam alert ("[<stack>/github-actions] ALERT <key>: ...") and reach the
# same Discord-compatible webhook:
#
#   ci-alert.sh <stack> <key> <message...>
#
# The webhook URL comes from $ALERT_WEBHOOK_URL (a CI secret) and reaches the sender through a
# pipe it reads as its webhook file: never a file on disk, a command line or the log. Without
# the secret the alert is only in the run log, and the run says so.
set -euo pipefail

if (( $# < 3 )); then
  echo "usage: ci-alert.sh <stack> <key> <message...> (for example: ci-alert.sh production deploy 'up failed')" >&2
  exit 2
fi
stack=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)

echo "alert: [$stack/github-actions] ALERT $1: ${*:2}"
if [[ -z ${ALERT_WEBHOOK_URL:-} ]]; then
  echo "::warning title=no alert webhook::ALERT_WEBHOOK_URL is not set: this alert is only in this run's log"
  exit 0
fi
# The runner has no syslog worth writing to; the line above is the log.
JAMJAM_STACK=$stack JAMJAM_HOST=github-actions JAMJAM_LOGGER=true \
  JAMJAM_ALERT_WEBHOOK_FILE=<(printf '%s\n' "$ALERT_WEBHOOK_URL") \
  bash "$root/components/files/jamjam-alert.sh" "$@"
