#!/usr/bin/env bash
# Installs the system tools the tests run for real (ufw and iptables in network namespaces,
# rclone against a local S3 server, shellcheck on every shipped script). Idempotent: does
# nothing when every tool is already there. Used by .ci/run and `make test`.
set -euo pipefail

# command -> Debian package that provides it
declare -A needed=(
  [ufw]=ufw
  [iptables]=iptables
  [ip]=iproute2
  [shellcheck]=shellcheck
  [rclone]=rclone
  [flock]=util-linux
  [pgrep]=procps
  [curl]=curl
  [gzip]=gzip
  [logger]=bsdutils
  [sshd]=openssh-server
  [sudo]=sudo
  [visudo]=sudo
  [useradd]=passwd
  [jq]=jq
  [systemd-analyze]=systemd
  # The rehearsal (make rehearse): a Docker engine, a Debian 12 rootfs, the stand-in images
  # (busybox-static plus binaries built with gcc -static), the relays into its namespaces.
  [dockerd]=docker.io
  [debootstrap]=debootstrap
  [busybox]=busybox-static
  [gcc]=gcc
  [socat]=socat
  [file]=file
  [nsenter]=util-linux
  [ssh]=openssh-client
)

missing=()
for tool in "${!needed[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    missing+=("${needed[$tool]}")
  fi
done
# Files rather than commands: the stand-ins link statically against glibc (libc.a is in
# libc6-dev, which gcc only recommends), and must get a static busybox (the dynamic busybox
# package also provides the command).
[ -n "$(find /usr/lib -name libc.a -print -quit 2>/dev/null)" ] || missing+=(libc6-dev)
if ! file -L /bin/busybox 2>/dev/null | grep -q "statically linked"; then missing+=(busybox-static); fi
[ "${#missing[@]}" -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and rerun" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
