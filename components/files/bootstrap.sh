#!/usr/bin/env bash
# Idempotent bootstrap of a fresh Ubuntu/Debian VPS for jamjam, run as root:
#
#   bootstrap.sh --user jamjam [--step packages|user|ssh ...]
#
#   packages  Docker engine and the tools the host jobs use, services enabled on boot
#   user      the day-to-day user: docker group, passwordless sudo (Pulumi runs `sudo -n`),
#             the admin's authorized SSH keys if it has none
#   ssh       key-only SSH: password and root login off, but only once the day-to-day user
#             has a key, and only if sshd accepts the new configuration
#
# With no --step, all three run in that order. Every step can run again without harm.
# JAMJAM_ROOT (tests only) prefixes the files the ssh step reads and writes and skips the sshd
# reload; the other steps always act on the real system.
set -euo pipefail

ROOT=${JAMJAM_ROOT:-}
SSHD_CONFIG=$ROOT/etc/ssh/sshd_config
DROP_IN_DIR=$ROOT/etc/ssh/sshd_config.d
# Sorts before the 50-cloud-init.conf many images ship: sshd keeps the first value it reads.
DROP_IN=$DROP_IN_DIR/10-jamjam.conf
SUDOERS_DIR=/etc/sudoers.d

# Docker from the distribution (docker.io) rather than Docker's own repository: no extra
# signing key or source to manage, and unattended-upgrades patches it with the rest of the OS.
# The rest is what the host jobs run: rclone (log archive), cron, flock (util-linux), pgrep
# (procps), curl and ca-certificates (alerts), gzip; and ufw/iptables for firewall.sh.
PACKAGES=(docker.io ufw iptables rclone cron util-linux procps curl ca-certificates gzip sudo
  openssh-server)
# Compose is for operators only (`docker compose ps`); the program runs containers itself.
# Ubuntu ships the v2 plugin as docker-compose-v2, Debian as docker-compose (v2 from trixie).
COMPOSE_PACKAGES=(docker-compose-v2 docker-compose)

log() { echo "bootstrap: $*" >&2; }
fail() {
  echo "bootstrap: $*" >&2
  exit 1
}
usage() {
  echo "bootstrap: usage: bootstrap.sh --user NAME [--step packages|user|ssh ...] (for example: bootstrap.sh --user jamjam)" >&2
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
      case "$2" in packages | user | ssh) steps+=("$2") ;; *) usage ;; esac
      shift 2
      ;;
    *) usage ;;
  esac
done
[ -n "$user" ] || usage
[ "${#steps[@]}" -gt 0 ] || steps=(packages user ssh)
[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || fail "must run as root (sudo -n)"
if [ -n "$ROOT" ] && [[ " ${steps[*]} " =~ \ (packages|user)\  ]]; then
  fail "JAMJAM_ROOT applies to --step ssh only; the other steps change the real system"
fi

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
  for package in "${PACKAGES[@]}"; do
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
  # restart: always brings the containers back only if dockerd itself starts on boot.
  systemctl enable --now docker.service cron.service
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

for step in "${steps[@]}"; do
  "step_$step"
done
