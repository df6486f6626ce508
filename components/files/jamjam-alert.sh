#!/usr/bin/env bash
# The one way a jamjam job raises (or closes) an alert:
#
#   jamjam-alert.sh <key> <message...>             an incident, or a one-off notice
#   jamjam-alert.sh --resolved <key> <message...>  the incident <key> is over
#
# <key> names the incident (disk, memory, heal/<container>, image-scan) so an operator can match
# a RESOLVED line to its ALERT. Every alert goes to the system log (tag jamjam-alert); when the
# webhook file holds a URL it is also POSTed there as Discord-compatible JSON {"content": "..."}.
#
# Exit status: 0 when the alert reached everything configured (syslog only, with no webhook file);
# 1 when the webhook was configured but did not take it, after retries, or when the webhook
# file is there but holds no usable URL (unreadable, empty, not a file). The message is in the
# system log either way; callers that track incidents use the status to send it again next run
# instead of recording an incident nobody was told about. 2 on bad usage.
#
# The webhook URL is a secret (it carries the token): it is read from a root-only file, handed
# to curl on stdin, and never printed, so it shows in no process list, log or error message.
set -euo pipefail
# Byte semantics whatever cron's locale: the escaping below must not depend on the locale
# having UTF-8 support, and bytes of a UTF-8 message are all >= 0x80, which it leaves alone.
export LC_ALL=C

WEBHOOK_FILE="${JAMJAM_ALERT_WEBHOOK_FILE:-/etc/jamjam/alert-webhook}"
STACK="${JAMJAM_STACK:-production}"
HOST="${JAMJAM_HOST:-$(uname -n)}"
HOST="${HOST%%.*}"
LOGGER="${JAMJAM_LOGGER:-logger}"
# A webhook that hangs must not hold the caller's flock for long: each try is bounded, and
# curl backs off 1 s, 2 s, ... between tries (or as long as a 429's Retry-After asks).
TIMEOUT="${JAMJAM_ALERT_TIMEOUT:-10}"
RETRIES="${JAMJAM_ALERT_RETRIES:-2}"
# Discord rejects content over 2000 characters outright; cut in bytes (never more characters
# than bytes), leaving room for the marker.
MAX_BYTES=1900

usage() {
  echo "usage: jamjam-alert.sh [--resolved] <key> <message...>" \
       "(for example: jamjam-alert.sh disk 'disk / is 85% full')" >&2
  exit 2
}

state=ALERT
priority=user.warning
if [[ ${1:-} == --resolved ]]; then
  state=RESOLVED
  priority=user.notice
  shift
fi
(( $# >= 2 )) || usage
key=$1
shift
[[ $key =~ ^[A-Za-z0-9][A-Za-z0-9._/-]*$ ]] || usage
for setting in TIMEOUT RETRIES; do
  if [[ ! ${!setting} =~ ^[0-9]+$ ]]; then
    echo "jamjam-alert: JAMJAM_ALERT_${setting}=${!setting} is not a whole number (e.g. 10)" >&2
    exit 2
  fi
done

# Invalid UTF-8 (a byte from a container name or a tool's output) would make the JSON invalid
# and the webhook refuse the whole alert; iconv -c drops such bytes, including a sequence cut
# in half by the truncation.
text="[$STACK/$HOST] $state $key: $*"
if (( ${#text} > MAX_BYTES )); then
  text="${text:0:MAX_BYTES}"
  truncated=1
fi
text=$(printf '%s' "$text" | iconv -c -f UTF-8 -t UTF-8 2>/dev/null || true)
if [[ -n ${truncated:-} ]]; then
  text+=" [...] (cut; the whole message is in the system log)"
fi

# One record per alert, multi-line messages included, so `journalctl -t jamjam-alert` lists
# each alert once. A missing syslog socket must not stop the webhook from being tried.
if ! "$LOGGER" -t jamjam-alert -p "$priority" -- "[$STACK/$HOST] $state $key: $*"; then
  echo "jamjam-alert: could not write to the system log: [$STACK/$HOST] $state $key: $*" >&2
fi

if [[ ! -e $WEBHOOK_FILE && ! -L $WEBHOOK_FILE ]]; then
  # No webhook configured: the system log is where alerts go.
  exit 0
fi
# The file is only written when a webhook is configured: one that cannot be used is a broken
# configuration, reported as a failure (callers send again next run), never taken for "none".
url=""
# Not only regular files: CI hands the URL over on a pipe (/dev/fd/N) so it never touches disk.
if [[ ! -d $WEBHOOK_FILE ]] && url=$(head -n 1 -- "$WEBHOOK_FILE" 2>/dev/null); then
  url="${url%$'\r'}"
  if [[ -z $url ]]; then
    echo "jamjam-alert: $WEBHOOK_FILE is empty; alert $key went to the system log only (set jamjam:alertWebhookUrl and run pulumi up)" >&2
    exit 1
  fi
else
  echo "jamjam-alert: cannot read $WEBHOOK_FILE (run as root; it must be a readable file); alert $key went to the system log only" >&2
  exit 1
fi
# Checked before use so that a quote cannot end curl's config string early; the URL itself is
# never echoed.
if [[ ! $url =~ ^https?://[^[:space:]\"\\]+$ ]]; then
  echo "jamjam-alert: $WEBHOOK_FILE does not hold one http(s) URL; alert $key went to the system log only" >&2
  exit 1
fi

# Pure bash rather than jq or python3: neither is sure to be on the host, and the alert path
# is the one thing that must work on a bare one. JSON needs \ and " escaped and every control
# character below 0x20 written as an escape; everything else (UTF-8 included) passes as is.
json_string() {
  local s=$1 code hex char
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  for (( code = 1; code < 32; code++ )); do
    printf -v hex '%02x' "$code"
    printf -v char '%b' "\\x$hex"
    if [[ $s == *"$char"* ]]; then
      s=${s//"$char"/$(printf '\\u%04x' "$code")}
    fi
  done
  printf '"%s"' "$s"
}

payload="{\"content\": $(json_string "$text")}"
# The URL goes in curl's config on stdin, the body on fd 3: neither reaches a command line.
# -s without -S keeps curl's own errors (which can quote the URL) out of the logs; the status
# and HTTP code below say what went wrong.
if code=$(printf 'url = "%s"\n' "$url" | curl --config - -s -o /dev/null -w '%{http_code}' \
            --fail --max-time "$TIMEOUT" --retry "$RETRIES" --retry-connrefused \
            -H 'Content-Type: application/json' --data-binary @/dev/fd/3 3<<<"$payload"); then
  exit 0
else
  rc=$?
fi
echo "jamjam-alert: webhook did not take alert $key (curl exit $rc, HTTP ${code:-000})" \
     "after $((RETRIES + 1)) tries; it is in the system log only" >&2
exit 1
