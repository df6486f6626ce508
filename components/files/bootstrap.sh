#!/usr/bin/env bash
# Idempotent bootstrap of a fresh Debian 12 or 13 VPS for jamjam, run as root:
#
#   bootstrap.sh --user jamjam [--step packages|docker|user|ssh ...]
#
#   packages  Docker engine and the tools the host jobs use, services enabled on boot
#   docker    /etc/docker/daemon.json (live-restore, no-new-privileges, no userland proxy, ...):
#             validated first, dockerd restarted only when it changed, rolled back if dockerd
#             does not come back with it; then, where the plan sends healthcheck start
#             intervals, the engine must speak DOCKER_API_MIN or later
#   user      the day-to-day user: docker group, passwordless sudo (Pulumi runs `sudo -n`),
#             the admin's authorized SSH keys if it has none
#   ssh       key-only SSH: password and root login off, but only once the day-to-day user
#             has a key, and only if sshd accepts the new configuration
#
# With no --step, all four run in that order. Every step can run again without harm. Before any
# step, the host must run the Debian release its stack names (DEBIAN_SETTING): otherwise
# nothing changes and the one error line says which setting to fix.
# JAMJAM_ROOT (tests only) prefixes the files the ssh and docker steps read and write and skips
# the sshd reload, and the release check reads its etc/os-release; the other steps always act
# on the real system. Under JAMJAM_ROOT only,
# JAMJAM_DOCKER_DAEMON_JSON names a file to install instead of the built-in daemon.json (the
# tests feed configurations dockerd refuses).
set -euo pipefail

# Filled in by the program (components/host.py, bootstrap_script) from the stack's setting: in
# the text, so changing the setting runs the bootstrap again and the copy installed on the host
# checks the same release when run by hand. DOCKER_API_MIN is set where the plan sends
# healthcheck start intervals, which an engine older than that API makes the deploy fail on.
DEBIAN_VERSION=@DEBIAN_VERSION@
DOCKER_API_MIN=@DOCKER_API_MIN@
DEBIAN_SETTING=@DEBIAN_SETTING@

ROOT=${JAMJAM_ROOT:-}
OS_RELEASE=$ROOT/etc/os-release
SSHD_CONFIG=$ROOT/etc/ssh/sshd_config
DROP_IN_DIR=$ROOT/etc/ssh/sshd_config.d
# Sorts before the 50-cloud-init.conf many images ship: sshd keeps the first value it reads.
DROP_IN=$DROP_IN_DIR/10-jamjam.conf
SUDOERS_DIR=/etc/sudoers.d
DAEMON_JSON=$ROOT/etc/docker/daemon.json
# The file dockerd ran with before a change, kept next to daemon.json (not in /tmp) until dockerd
# is back: if this run dies half way, the next run still knows what to roll back to. Empty when
# there was no daemon.json before (an empty file is no valid daemon.json, so it can't be one).
DAEMON_JSON_PREVIOUS=$ROOT/etc/docker/.daemon.json.jamjam-previous

# Docker from the distribution (docker.io) rather than Docker's own repository: no extra
# signing key or source to manage, and unattended-upgrades patches it with the rest of the OS.
# The rest is what the host jobs run: rclone (log archive), cron, flock (util-linux), pgrep
# (procps), curl and ca-certificates (alerts), gzip; ufw/iptables for firewall.sh; jq checks
# daemon.json where dockerd is too old for --validate (docker.io 20.10 in Debian 12).
PACKAGES=(docker.io ufw iptables rclone cron util-linux procps curl ca-certificates gzip sudo
  openssh-server jq)
# Debian 13 moved the docker command out of docker.io into docker-cli, which docker.io only
# recommends: --no-install-recommends would leave a host with dockerd and no client.
CLIENT_PACKAGES=(docker-cli)
# Compose is for operators only (`docker compose ps`); the program runs containers itself.
# Ubuntu ships the v2 plugin as docker-compose-v2, Debian as docker-compose (v2 from trixie).
COMPOSE_PACKAGES=(docker-compose-v2 docker-compose)

log() { echo "bootstrap: $*" >&2; }
fail() {
  echo "bootstrap: $*" >&2
  exit 1
}
usage() {
  echo "bootstrap: usage: bootstrap.sh --user NAME [--step packages|docker|user|ssh ...] (for example: bootstrap.sh --user jamjam)" >&2
  exit 2
}

user=""
steps=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --user)
      [ "$#" -ge 2 ] || usage
      if ! [[ "$2" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || [ "$2" = root ]; then usage; fi
      user=$2
      shift 2
      ;;
    --step)
      [ "$#" -ge 2 ] || usage
      case "$2" in packages | docker | user | ssh) steps+=("$2") ;; *) usage ;; esac
      shift 2
      ;;
    *) usage ;;
  esac
done
[ -n "$user" ] || usage
[ "${#steps[@]}" -gt 0 ] || steps=(packages docker user ssh)
[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || fail "must run as root (sudo -n)"
if [ -n "$ROOT" ] && [[ " ${steps[*]} " =~ \ (packages|user)\  ]]; then
  fail "JAMJAM_ROOT applies to --step ssh and docker only; the other steps change the real system"
fi

# Reads one field of os-release without running the file (it is shell syntax, but not ours).
os_release_field() {
  sed -n "s/^$1=//p" "$OS_RELEASE" | head -n 1 | tr -d '"'"'"
}

check_release() {
  local id version name
  [[ $DEBIAN_VERSION =~ ^[0-9]+$ ]] \
    || fail "this copy has no Debian release filled in; the program ships it (pulumi up), do not run components/files/bootstrap.sh itself"
  [ -r "$OS_RELEASE" ] || fail "cannot read $OS_RELEASE to check the host runs Debian $DEBIAN_VERSION as $DEBIAN_SETTING says; reinstall the VPS with Debian $DEBIAN_VERSION"
  id=$(os_release_field ID)
  version=$(os_release_field VERSION_ID)
  name=$(os_release_field PRETTY_NAME)
  if [ "$id" != debian ]; then
    fail "this host runs ${name:-$id}, not Debian; $DEBIAN_SETTING supports Debian 12 or 13: reinstall the VPS with Debian $DEBIAN_VERSION"
  fi
  if [ "$version" != "$DEBIAN_VERSION" ]; then
    fail "this host runs Debian ${version:-without a VERSION_ID} but $DEBIAN_SETTING is $DEBIAN_VERSION; fix: pulumi config set $DEBIAN_SETTING ${version:-12} (or upgrade the host to Debian $DEBIAN_VERSION)"
  fi
}

# Where the plan sends healthcheck start intervals, the engine must take them (API 1.44, Docker
# 25): the provider's client refuses to create such a container on an older one.
check_engine_api() {
  local api
  [ -n "$DOCKER_API_MIN" ] || return 0
  api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null) \
    || fail "dockerd does not answer, so its API version cannot be checked (systemctl status docker.service)"
  if [ "$(printf '%s\n%s\n' "$DOCKER_API_MIN" "$api" | sort -V | head -n 1)" != "$DOCKER_API_MIN" ]; then
    fail "dockerd speaks API $api, older than the $DOCKER_API_MIN the plan's healthcheck start intervals need; fix: install Debian $DEBIAN_VERSION's own docker.io (apt-get install docker.io docker-cli), or pulumi config set $DEBIAN_SETTING 12 to leave start intervals out"
  fi
}

home_of() {
  if [ -n "$ROOT" ]; then
    echo "$ROOT/home/$1"
  else
    getent passwd "$1" | cut -d: -f6
  fi
}

# A line sshd would read as a public key, options (from=..., restrict) allowed before it.
has_key() {
  local keys
  keys="$(home_of "$1")/.ssh/authorized_keys"
  [ -f "$keys" ] || return 1
  grep -vE '^[[:space:]]*(#|$)' "$keys" \
    | grep -qE '(^|[[:space:]])(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)[[:space:]]+AAAA'
}

# sshd's StrictModes ignores keys when the home, ~/.ssh or authorized_keys can be written by
# someone other than the user or root: such a key would not log anyone in.
keys_usable() {
  local home uid path owner mode
  home=$(home_of "$1")
  if [ -n "$ROOT" ]; then uid=$(stat -c %u "$home"); else uid=$(id -u "$1"); fi
  for path in "$home" "$home/.ssh" "$home/.ssh/authorized_keys"; do
    [ -e "$path" ] || return 1
    owner=$(stat -c %u "$path")
    mode=$(stat -c %a "$path")
    { [ "$owner" = "$uid" ] || [ "$owner" = 0 ]; } || return 1
    (((8#$mode & 8#022) == 0)) || return 1
  done
}

installed() {
  dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

step_packages() {
  local missing=() package want_compose=yes
  # Every apt run on the host waits for another one instead of failing on dpkg's lock: Pulumi
  # runs independent commands at the same time (two jobs' installs collided in the rehearsal),
  # and a fresh VPS often runs unattended-upgrades at first boot.
  printf 'DPkg::Lock::Timeout "600";\n' >/etc/apt/apt.conf.d/50jamjam-wait-for-dpkg-lock
  local wanted=("${PACKAGES[@]}")
  [ "$DEBIAN_VERSION" -lt 13 ] || wanted+=("${CLIENT_PACKAGES[@]}")
  for package in "${wanted[@]}"; do
    installed "$package" || missing+=("$package")
  done
  for package in "${COMPOSE_PACKAGES[@]}"; do
    if installed "$package"; then want_compose=no; fi
  done
  if [ "${#missing[@]}" -gt 0 ] || [ "$want_compose" = yes ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if [ "$want_compose" = yes ]; then
      for package in "${COMPOSE_PACKAGES[@]}"; do
        if apt-cache show "$package" >/dev/null 2>&1; then
          missing+=("$package")
          break
        fi
      done
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
      log "installing ${missing[*]}"
      apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
  fi
  command -v docker >/dev/null 2>&1 \
    || fail "the docker command is missing after installing docker.io; install its client (apt-get install docker-cli on Debian 13)"
  # restart: always brings the containers back only if dockerd itself starts on boot.
  systemctl enable --now docker.service cron.service
}

# The daemon configuration this program owns (CIS Docker Benchmark v1.6 section 2; the README's
# "Hardening" section has the table). JSON has no comments, so the reasons are here:
#   live-restore       containers keep running while dockerd restarts (an unattended upgrade of
#                      docker.io, this step). Only a daemon that *stops* with live-restore on
#                      leaves them up: the restart that first turns it on still restarts them.
#   no-new-privileges  setuid binaries in any container, ours or one an operator starts by hand,
#                      cannot gain privileges; our containers also set it themselves.
#   userland-proxy     off: published ports are kernel DNAT only (hairpin NAT for loopback).
#                      With live-restore this matters: docker-proxy processes die with dockerd,
#                      so with the proxy on, connections through it fail while dockerd restarts;
#                      DNAT rules stay in the kernel and UDP 5000 keeps answering.
#   icc                off for the default bridge docker0 only. Our containers talk over the
#                      user-defined network jamjam, which has its own enable_icc (default on),
#                      so echo -> signaling and cloudflared -> signaling keep working; containers
#                      an operator runs by hand on docker0 can no longer reach each other.
#   log-driver/opts    the containers' own rotation (SPEC: json-file, 100m x 5) as the default
#                      for any container that does not set one.
#   log-level, iptables, experimental
#                      the defaults, pinned: ufw's DOCKER-USER rules (firewall.sh) need Docker to
#                      manage iptables, and nothing may turn on experimental features here.
# Not set, because each would break the program: userns-remap (moves /var/lib/docker/containers,
# which the log archive reads, and changes volume ownership), a TCP socket with TLS (Pulumi
# reaches the engine over SSH), an authorization plugin, default-ulimits (nproc counts per host
# user, across containers). What the distribution's docker.service passes as flags (hosts,
# containerd) stays out of the file: dockerd refuses to start when a setting comes both ways.
daemon_json() {
  if [ -n "$ROOT" ] && [ -n "${JAMJAM_DOCKER_DAEMON_JSON:-}" ]; then
    cat "$JAMJAM_DOCKER_DAEMON_JSON"
    return
  fi
  cat <<'EOF'
{
  "live-restore": true,
  "no-new-privileges": true,
  "userland-proxy": false,
  "icc": false,
  "log-driver": "json-file",
  "log-opts": {
    "max-size": "100m",
    "max-file": "5"
  },
  "log-level": "info",
  "iptables": true,
  "experimental": false
}
EOF
}

# dockerd --validate (Docker 23.0 and later: Ubuntu 24.04's docker.io, Debian 13's) checks the
# keys and values. Debian 12's docker.io (20.10) has no such flag: there jq checks that the file
# is one JSON object, and dockerd judges the keys when it starts, which the rollback covers.
# Neither sees a conflict with the flags in docker.service; the rollback does.
validate_daemon_json() {
  local file=$1 out
  if dockerd --help 2>/dev/null | grep -q -- '--validate'; then
    if ! out=$(dockerd --validate --config-file "$file" 2>&1); then
      echo "dockerd --validate rejects it: $(printf '%s\n' "$out" | tail -n 1)"
      return 1
    fi
  elif command -v jq >/dev/null 2>&1; then
    # Slurped, so that an empty file (which jq 1.6 -e lets pass) or two objects in a row fail.
    if ! out=$(jq -e -s 'length == 1 and (.[0] | type == "object")' "$file" 2>&1); then
      if [ "$out" = false ]; then
        echo "it is not one JSON object"
      else
        echo "it is not JSON (jq: $(printf '%s\n' "$out" | tail -n 1))"
      fi
      return 1
    fi
  else
    echo "this dockerd has no --validate (Docker 23+) and jq is missing to check it; install jq"
    return 1
  fi
}

# docker.service is Type=notify, so `systemctl restart` returns once dockerd says it is ready,
# or fails. The distribution's unit sets TimeoutStartSec=0 (no limit): bound it here. Then the
# API must answer, which every later step and Pulumi's Docker provider need.
restart_dockerd() {
  local tries=30
  timeout 180 systemctl restart docker.service || return 1
  until docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 1
  done
}

# live-restore keeps containers up only if the daemon that stops has it on. dockerd takes
# live-restore on a reload (SIGHUP) without restarting, so turning it on first means even the
# restart that installs it leaves the containers running. Best effort: where the reload does
# not take, the restart still applies everything and the containers restart once.
live_restore_first() {
  local tries=15
  [ "$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)" = false ] || return 0
  command -v jq >/dev/null 2>&1 && jq -e '."live-restore" == true' "$DAEMON_JSON" >/dev/null 2>&1 \
    || return 0
  systemctl reload docker.service >/dev/null 2>&1 || return 0
  until [ "$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)" = true ]; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 0
    sleep 1
  done
}

step_docker() {
  apply_daemon_json
  check_engine_api
}

apply_daemon_json() {
  local tmp reason
  command -v dockerd >/dev/null 2>&1 \
    || fail "dockerd is not installed; run the packages step first (bootstrap.sh --user $user --step packages)"
  install -d -m 0755 "$(dirname "$DAEMON_JSON")"
  tmp=$(mktemp "$(dirname "$DAEMON_JSON")/.daemon.json.XXXXXX")
  daemon_json >"$tmp"
  chmod 0644 "$tmp"
  # A leftover previous file means the last run stopped before dockerd came back: the file in
  # place may never have been loaded, so this run restarts even if nothing changed since.
  if [ ! -e "$DAEMON_JSON_PREVIOUS" ] && [ -f "$DAEMON_JSON" ] && cmp -s "$tmp" "$DAEMON_JSON"; then
    rm -f "$tmp"
    return
  fi
  if ! reason=$(validate_daemon_json "$tmp"); then
    rm -f "$tmp"
    fail "did not install the new $DAEMON_JSON nor restart dockerd: $reason"
  fi
  if [ -e "$DAEMON_JSON_PREVIOUS" ]; then
    log "finishing a change of $DAEMON_JSON that an earlier run did not see through"
  elif [ -f "$DAEMON_JSON" ]; then
    cp -p "$DAEMON_JSON" "$DAEMON_JSON_PREVIOUS"
  else
    : >"$DAEMON_JSON_PREVIOUS"
  fi
  mv -f "$tmp" "$DAEMON_JSON"
  live_restore_first
  if restart_dockerd; then
    rm -f "$DAEMON_JSON_PREVIOUS"
    log "dockerd restarted with the new $DAEMON_JSON"
    return
  fi
  if [ -s "$DAEMON_JSON_PREVIOUS" ]; then
    mv -f "$DAEMON_JSON_PREVIOUS" "$DAEMON_JSON"
  else
    rm -f "$DAEMON_JSON" "$DAEMON_JSON_PREVIOUS"
  fi
  # systemd refuses to start a unit that failed too often in a row (StartLimitBurst).
  systemctl reset-failed docker.service >/dev/null 2>&1 || true
  if restart_dockerd; then
    fail "dockerd did not come back with the new $DAEMON_JSON; the previous configuration is back and dockerd runs with it (journalctl -u docker.service says why)"
  fi
  fail "dockerd did not come back with the new $DAEMON_JSON nor with the previous configuration, which is back in place; Docker is down: see journalctl -u docker.service"
}

step_user() {
  local home admin_keys tmp
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$user"
    log "created user $user"
  fi
  # The group normally comes with docker.io; creating it here lets the user step run alone.
  getent group docker >/dev/null || groupadd --system docker
  usermod -aG docker "$user"
  home=$(home_of "$user")
  if ! has_key "$user"; then
    # The admin who ran this (root on a fresh VPS, or the sudo user) hands over its keys.
    admin_keys="$(home_of "${SUDO_USER:-root}")/.ssh/authorized_keys"
    [ -s "$admin_keys" ] || fail "$user has no SSH key and ${SUDO_USER:-root} has none to copy; add one to $home/.ssh/authorized_keys"
    install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
    install -m 0600 -o "$user" -g "$user" "$admin_keys" "$home/.ssh/authorized_keys"
    log "copied ${SUDO_USER:-root}'s authorized keys to $user"
  fi
  # Staged in sudoers.d under a name with a dot (which sudo skips) and renamed once visudo
  # accepts it: a broken or half-written sudoers file would take sudo away from everyone.
  tmp=$(mktemp "$SUDOERS_DIR/.jamjam.XXXXXX")
  printf '# Managed by jamjam bootstrap.sh: Pulumi connects as %s and runs sudo -n.\n%s ALL=(ALL) NOPASSWD:ALL\n' "$user" "$user" >"$tmp"
  chmod 0440 "$tmp"
  if ! visudo -cqf "$tmp"; then
    rm -f "$tmp"
    fail "the sudoers entry for $user does not validate"
  fi
  if cmp -s "$tmp" "$SUDOERS_DIR/$user"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$SUDOERS_DIR/$user"
  fi
}

# A reload keeps existing sessions (this one included). The unit is ssh on Debian/Ubuntu and
# sshd elsewhere; on Ubuntu's socket-activated ssh it may not be running, and then the next
# connection starts it with the new configuration, which try-reload-or-restart leaves to it.
reload_sshd() {
  local unit
  for unit in ssh.service sshd.service; do
    if systemctl cat "$unit" >/dev/null 2>&1; then
      systemctl try-reload-or-restart "$unit"
      return
    fi
  done
  fail "no ssh.service or sshd.service to reload; the new configuration applies when sshd restarts"
}

step_ssh() {
  local tmp
  # The guard: turning password and root login off is safe only once the day-to-day user can
  # log in with a key. Otherwise change nothing and say why.
  has_key "$user" || fail "refusing to disable password and root login: $user has no authorized SSH key in $(home_of "$user")/.ssh/authorized_keys"
  keys_usable "$user" || fail "refusing to disable password and root login: sshd would ignore $user's keys, since $(home_of "$user"), its .ssh or authorized_keys is writable by another user (chmod go-w them)"
  grep -qE "^[[:space:]]*Include[[:space:]]+.*sshd_config\.d/" "$SSHD_CONFIG" \
    || fail "$SSHD_CONFIG does not include sshd_config.d/*.conf; add 'Include /etc/ssh/sshd_config.d/*.conf' at its top"
  [ -d "$DROP_IN_DIR" ] || install -d -m 0755 "$DROP_IN_DIR"
  tmp=$(mktemp "$DROP_IN.XXXXXX")
  cat >"$tmp" <<'EOF'
# Managed by jamjam bootstrap.sh: key-only SSH, no root login.
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
EOF
  chmod 0644 "$tmp"
  if [ -f "$DROP_IN" ] && cmp -s "$tmp" "$DROP_IN"; then
    rm -f "$tmp"
    return
  fi
  local previous=""
  [ -f "$DROP_IN" ] && previous=$(mktemp) && cp -p "$DROP_IN" "$previous"
  mv -f "$tmp" "$DROP_IN"
  # sshd -t needs its privilege separation directory, which systemd creates only when it
  # starts sshd: on a fresh image where sshd has not run since boot (socket activation) it is
  # missing and the test fails on that, not on the configuration.
  if [ -z "$ROOT" ] && [ ! -d /run/sshd ]; then install -d -m 0755 /run/sshd; fi
  if ! sshd -t -f "$SSHD_CONFIG"; then
    if [ -n "$previous" ]; then mv -f "$previous" "$DROP_IN"; else rm -f "$DROP_IN"; fi
    fail "sshd rejected the hardened configuration; left it as it was"
  fi
  [ -z "$previous" ] || rm -f "$previous"
  if [ -z "$ROOT" ]; then
    reload_sshd
  fi
  log "SSH is key-only; root login is off"
}

check_release
for step in "${steps[@]}"; do
  "step_$step"
done
