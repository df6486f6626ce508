#!/usr/bin/env bash
# Installs Trivy (and jq, which image-scan.sh reads Trivy's JSON with) the way Aqua documents
# it for Debian and Ubuntu: their signing key as a dedicated keyring, and their apt repository
# with signed-by pointing at that keyring only, so the key cannot vouch for any other repository.
# From then on the distribution's apt (and unattended-upgrades, if an operator adds the origin)
# keeps Trivy current like any other package.
#
# Idempotent: a second run changes nothing and does not touch the network beyond fetching the
# key to compare; the package lists are refreshed only when the repository or key changed or
# a package is missing. Run as root by the Pulumi program.
set -euo pipefail

KEY_URL="https://aquasecurity.github.io/trivy-repo/deb/public.key"
KEYRING="${JAMJAM_TRIVY_KEYRING:-/usr/share/keyrings/trivy.gpg}"
SOURCES="${JAMJAM_TRIVY_SOURCES:-/etc/apt/sources.list.d/trivy.list}"
# "generic": Aqua publishes one suite for every Debian/Ubuntu release (the older per-codename
# suites lag behind new releases).
REPO_LINE="deb [signed-by=$KEYRING] https://aquasecurity.github.io/trivy-repo/deb generic main"
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
  echo "install-trivy: $*" >&2
}

installed() {
  dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

changed=0
missing=()
for package in curl gnupg; do
  installed "$package" || missing+=("$package")
done
if (( ${#missing[@]} > 0 )); then
  apt_get update -q
  apt_get install -y -q --no-install-recommends "${missing[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 --max-time 60 "$KEY_URL" -o "$work/public.key"
gpg --batch --yes --dearmor -o "$work/trivy.gpg" "$work/public.key"
# -T (here and on mv below): a directory in the way must fail the run, not silently take the
# file inside it, leaving apt without the key or source and a confusing failure further on.
if ! cmp -s "$work/trivy.gpg" "$KEYRING"; then
  install -D -T -m 0644 "$work/trivy.gpg" "$KEYRING"
  log "installed Aqua's signing key at $KEYRING"
  changed=1
fi

# Written whole rather than appended (as the vendor's `tee -a` does), so a rerun does not add
# a second, duplicate source.
if [[ "$(cat "$SOURCES" 2>/dev/null)" != "$REPO_LINE" ]]; then
  printf '%s\n' "$REPO_LINE" >"$SOURCES.tmp"
  mv -fT "$SOURCES.tmp" "$SOURCES"
  log "added the Trivy apt repository in $SOURCES"
  changed=1
fi

missing=()
for package in trivy jq; do
  installed "$package" || missing+=("$package")
done
if (( changed )) || (( ${#missing[@]} > 0 )); then
  apt_get update -q
fi
if (( ${#missing[@]} > 0 )); then
  apt_get install -y -q --no-install-recommends "${missing[@]}"
  log "installed ${missing[*]}"
fi
