#!/usr/bin/env bash
# Weekly: scans the images this stack's containers are running with Trivy and alerts with a
# summary when any has a HIGH or CRITICAL vulnerability: counts per severity and the first few
# CVE ids (CRITICAL first) per image. It alerts every week the findings remain, as a reminder;
# a clean scan after a dirty one sends RESOLVED.
#
# The images are taken from the running containers, not from the program's config, so what is
# scanned is what is serving (including an image an operator rolled back to by hand).
# Trivy's JSON is read with jq, which install-trivy.sh installs alongside it.
set -euo pipefail

STACK="${JAMJAM_STACK:-production}"
STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/image-scan}"
ALERT="${JAMJAM_ALERT:-/opt/jamjam/scripts/jamjam-alert.sh}"
TOP="${JAMJAM_SCAN_TOP:-5}"
# One image's scan (including the first vulnerability-database download) must not hold the
# job's lock for ever.
SCAN_TIMEOUT="${JAMJAM_SCAN_TIMEOUT:-1800}"

log() {
  echo "image-scan: $*" >&2
}

# No leading zero: bash arithmetic would read 08 as octal and fail, and jq refuses it as JSON.
if [[ ! $TOP =~ ^[1-9][0-9]{0,3}$ ]]; then
  log "JAMJAM_SCAN_TOP=$TOP is not a whole number from 1 to 9999; unset it for the default, 5"
  exit 2
fi
if [[ ! $SCAN_TIMEOUT =~ ^[1-9][0-9]{0,5}$ ]]; then
  log "JAMJAM_SCAN_TIMEOUT=$SCAN_TIMEOUT is not a whole number of seconds from 1 to 999999; unset it for the default, 1800"
  exit 2
fi
for tool in docker trivy jq; do
  command -v "$tool" >/dev/null || { log "$tool is not installed (install-trivy.sh installs trivy and jq)"; exit 1; }
done
mkdir -p "$STATE_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! listing=$(timeout 120 docker ps --filter "label=jamjam.stack=$STACK" --format '{{.Image}}'); then
  log "docker did not answer; nothing scanned"
  exit 1
fi
mapfile -t running < <(sort -u <<<"$listing" | sed '/^$/d')
if (( ${#running[@]} == 0 )); then
  log "no running containers labelled jamjam.stack=$STACK; nothing scanned"
  exit 1
fi

# The program creates containers from image IDs, so `docker ps` shows a short ID, which Trivy
# cannot look up. Scan by the repo digest instead: it names exactly the image the container
# runs, even after its tag has been moved to a newer build. Alerts show the tag, for people.
images=()
labels=()
failed=()
for ref in "${running[@]}"; do
  if ! names=$(timeout 120 docker image inspect --format '{{join .RepoTags " "}}|{{join .RepoDigests " "}}' "$ref"); then
    log "docker could not inspect image $ref"
    failed+=("$ref")
    continue
  fi
  read -r tag _ <<<"${names%%|*}"
  read -r digest _ <<<"${names#*|}"
  if [[ -z $digest && -z $tag ]]; then
    log "image $ref has neither a tag nor a registry digest; Trivy cannot find it"
    failed+=("$ref")
    continue
  fi
  images+=("${digest:-$tag}")
  labels+=("${tag:-$digest}")
done

# Per image, one line: "<critical> <high> <top ids...>". A CVE found in several packages or
# layers of one image counts once.
summarise() {
  jq -r --argjson top "$TOP" '
    [.Results[]?.Vulnerabilities[]? | select(.Severity == "CRITICAL" or .Severity == "HIGH")]
    | unique_by(.VulnerabilityID)
    | sort_by((if .Severity == "CRITICAL" then 0 else 1 end), .VulnerabilityID)
    | [(map(select(.Severity == "CRITICAL")) | length),
       (map(select(.Severity == "HIGH")) | length),
       (.[:$top] | map("\(.VulnerabilityID) (\(.PkgName) \(.InstalledVersion) -> \(.FixedVersion // "no fix yet"))")
        | join(", "))]
    | "\(.[0]) \(.[1]) \(.[2])"' "$1"
}

findings=()
for i in "${!images[@]}"; do
  image=${images[$i]}
  label=${labels[$i]}
  report="$work/report.json"
  if ! timeout "$SCAN_TIMEOUT" trivy image --quiet --format json --severity HIGH,CRITICAL \
         "$image" >"$report"; then
    log "trivy could not scan $label ($image)"
    failed+=("$label")
    continue
  fi
  if ! line=$(summarise "$report"); then
    log "trivy's report for $label is not the JSON expected (schema 2)"
    failed+=("$label")
    continue
  fi
  read -r critical high top <<<"$line"
  log "$label: $critical CRITICAL, $high HIGH"
  if (( critical + high > 0 )); then
    findings+=("$label: $critical CRITICAL, $high HIGH: $top")
  fi
done

status=0
open="$STATE_DIR/findings.open"
# A marker that is not a regular file is damaged: logged, removed, and no incident is known,
# so at worst an alert repeats; it must not fail every week's run on the rm below.
if [[ -e $open || -L $open ]] && [[ -L $open || ! -f $open ]]; then
  log "incident marker $open is not a regular file; removed it, no incident is open"
  rm -rf -- "$open" || status=1
fi
if (( ${#findings[@]} > 0 )); then
  message="HIGH/CRITICAL vulnerabilities in ${#findings[@]} of ${#running[@]} running image(s)."
  message+=$(printf '\n- %s' "${findings[@]}")
  message+=$'\n'"Rebuild or bump the images (see \`trivy image --severity HIGH,CRITICAL <image>\`)."
  if "$ALERT" image-scan "$message"; then
    # Aside and renamed, so the marker is whole or absent.
    if ! { date -u +%Y-%m-%dT%H:%M:%SZ >"$open.tmp"; } 2>/dev/null || ! mv -fT -- "$open.tmp" "$open"; then
      rm -f -- "$open.tmp" 2>/dev/null || true
      log "could not record the findings in $open; a clean scan will not send RESOLVED"
      status=1
    fi
  else
    status=1
  fi
elif [[ -f $open ]] && (( ${#failed[@]} == 0 )); then
  if "$ALERT" --resolved image-scan "no HIGH/CRITICAL vulnerabilities left in the ${#running[@]} running image(s)."; then
    rm -f -- "$open" || status=1
  else
    status=1
  fi
fi
if (( ${#failed[@]} > 0 )); then
  # A scan that silently stops working would look like a clean bill of health.
  "$ALERT" image-scan-failed "could not scan ${failed[*]}; see \`journalctl -t jamjam-image-scan\`." || true
  status=1
fi
exit "$status"
