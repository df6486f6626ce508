#!/usr/bin/env bash
# Installs the system tools the tests run for real (ufw and iptables in network namespaces,
# rclone against a local S3 server, shellcheck on every shipped script, ssh-agent and node for the
# CI scripts and the PR-comment script, PostgreSQL for the backup and restore-drill scripts,
# docker.io for a real dockerd). Idempotent: does
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
  [ssh-agent]=openssh-client
  [ssh-keygen]=openssh-client
  [node]=nodejs
  [sudo]=sudo
  [visudo]=sudo
  [useradd]=passwd
  [jq]=jq
  [systemd-analyze]=systemd
  # tests/test_docker_daemon.py and the rehearsal (make rehearse): a real dockerd in a network
  # namespace, a static busybox image
  [dockerd]=docker.io
  [nsenter]=util-linux
  [busybox]=busybox-static
  [runuser]=util-linux
  [pg_restore]=postgresql-client
  # tests/test_ops_image_scan_engine.py: a registry on loopback in a test's namespace, so
  # pulled images carry the repo digest the scan uses
  [docker-registry]=docker-registry
  # The rehearsal also: a Debian 12 or 13 rootfs (bookworm's debootstrap knows trixie), the
  # stand-in binaries (gcc -static), the relays into its namespaces.
  [debootstrap]=debootstrap
  [gcc]=gcc
  [socat]=socat
  [file]=file
  [ssh]=openssh-client
)

missing=()
for tool in "${!needed[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    missing+=("${needed[$tool]}")
  fi
done
# The backup tests run real PostgreSQL servers; Debian keeps them off PATH, under
# /usr/lib/postgresql/<version>/bin.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  missing+=(postgresql)
fi
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
# The package's own registry service listens on every address (:5000); the test runs its own
# on loopback in a namespace, so the service is not wanted on a test machine.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
