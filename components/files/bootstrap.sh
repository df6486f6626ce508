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
# JAMJAM_ROOT (tests only) prefixes the files the user and ssh steps touch.
set -euo pipefail

ROOT=${JAMJAM_ROOT:-}
SSHD_CONFIG=${JAMJAM_SSHD_CONFIG:-$ROOT/etc/ssh/sshd_config}
DROP_IN_DIR=$ROOT/etc/ssh/sshd_config.d
# Sorts before the 50-cloud-init.conf many images ship: sshd keeps the first value it reads.
DROP_IN=$DROP_IN_DIR/10-jamjam.conf
SUDOERS=$ROOT/etc/sudoers.d/jamjam

# Docker from the distribution (docker.io) rather than Docker's own repository: no extra
# signing key or source to manage, and unattended-upgrades patches it with the rest of the OS.
PACKAGES=(docker.io ufw iptables rclone cron util-linux procps curl ca-certificates gzip sudo
  openssh-server)

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

home_of() {
  if [ -n "$ROOT" ]; then
    echo "$ROOT/home/$1"
  else
    getent passwd "$1" | cut -d: -f6
  fi
}

has_key() {
  local keys
  keys="$(home_of "$1")/.ssh/authorized_keys"
  [ -f "$keys" ] && grep -qE '^[^#[:space:]]*(ssh-|ecdsa-|sk-)' "$keys"
}

step_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
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
  tmp=$(mktemp)
  printf '# Managed by jamjam bootstrap.sh: Pulumi connects as %s and runs sudo -n.\n%s ALL=(ALL) NOPASSWD:ALL\n' "$user" "$user" >"$tmp"
  visudo -cqf "$tmp" || fail "the sudoers entry for $user does not validate"
  install -m 0440 "$tmp" "$SUDOERS"
  rm -f "$tmp"
}

step_ssh() {
  local tmp
  # The guard: turning password and root login off is safe only once the day-to-day user can
  # log in with a key. Otherwise change nothing and say why.
  has_key "$user" || fail "refusing to disable password and root login: $user has no authorized SSH key in $(home_of "$user")/.ssh/authorized_keys"
  grep -qE "^[[:space:]]*Include[[:space:]]+.*sshd_config\.d/" "$SSHD_CONFIG" \
    || fail "$SSHD_CONFIG does not include sshd_config.d/*.conf; add 'Include /etc/ssh/sshd_config.d/*.conf' at its top"
  install -d -m 0755 "$DROP_IN_DIR"
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
  if ! sshd -t -f "$SSHD_CONFIG"; then
    if [ -n "$previous" ]; then mv -f "$previous" "$DROP_IN"; else rm -f "$DROP_IN"; fi
    fail "sshd rejected the hardened configuration; left it as it was"
  fi
  [ -z "$previous" ] || rm -f "$previous"
  if [ -z "$ROOT" ]; then
    # Reload keeps existing sessions (this one included); the unit is ssh on Debian/Ubuntu.
    systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service
  fi
  log "SSH is key-only; root login is off"
}

for step in "${steps[@]}"; do
  "step_$step"
done
