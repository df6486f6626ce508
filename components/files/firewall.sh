#!/usr/bin/env bash
# The VPS firewall: ufw for traffic to the host, plus a DOCKER-USER block so traffic Docker
# forwards to published container ports obeys the same allowlist.
#
#   firewall.sh apply  --ssh-port 22 [--allow 5000/udp ...]
#   firewall.sh remove --ssh-port 22
#
# Why DOCKER-USER: a published port is DNATed in PREROUTING and then travels through FORWARD,
# never through ufw's INPUT chains, so ufw alone would let a container published on 8080 by
# mistake be reached from anywhere. DOCKER-USER is the chain Docker reserves for rules like
# these and jumps to first. The block lives in ufw's after.rules / after6.rules (the approach
# the ufw-docker project popularised) so ufw restores it on reload and on boot.
#
# Docker's bridges are docker0 and br-<id> (one per compose network); a network given another
# name with com.docker.network.bridge.name would not be covered.
#
# Both actions are idempotent, allow SSH before enabling anything, and `remove` leaves SSH
# allowed: neither can lock the operator out.
set -euo pipefail

readonly TAG=jamjam
readonly BEGIN="# BEGIN jamjam DOCKER-USER (managed by jamjam firewall.sh; do not edit)"
readonly END="# END jamjam DOCKER-USER"
UFW_DIR=/etc/ufw

fail() {
  echo "firewall.sh: $*" >&2
  exit 2
}

usage() {
  fail "usage: firewall.sh apply|remove --ssh-port PORT [--allow PORT/PROTO ...] (for example: firewall.sh apply --ssh-port 22 --allow 5000/udp)"
}

# No leading zeros: ufw and iptables would each read "08080" their own way.
valid_port() {
  [[ "$1" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$1" -le 65535 ]
}

# --- arguments: all checked before anything changes --------------------------------------
[ "$#" -ge 1 ] || usage
action=$1
shift
case "$action" in apply | remove) ;; *) usage ;; esac

ssh_port=""
allowed=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --ssh-port)
      [ "$#" -ge 2 ] || fail "--ssh-port needs a port (for example: --ssh-port 22)"
      valid_port "$2" || fail "--ssh-port: '$2' is not a port from 1 to 65535 (for example: --ssh-port 22)"
      ssh_port=$2
      shift 2
      ;;
    --allow)
      [ "$action" = apply ] || fail "--allow only goes with apply; remove keeps SSH only (for example: firewall.sh remove --ssh-port 22)"
      [ "$#" -ge 2 ] || fail "--allow needs PORT/PROTO (for example: --allow 5000/udp)"
      if ! [[ "$2" =~ ^([0-9]{1,5})/(tcp|udp)$ ]] || ! valid_port "${BASH_REMATCH[1]}"; then
        fail "--allow: '$2' is not PORT/PROTO with proto tcp or udp (for example: --allow 5000/udp)"
      fi
      allowed+=("$2")
      shift 2
      ;;
    *) fail "unknown argument '$1' (for example: firewall.sh apply --ssh-port 22 --allow 5000/udp)" ;;
  esac
done
[ -n "$ssh_port" ] || fail "--ssh-port is required so SSH is never closed (for example: --ssh-port 22)"
# One order whatever the command line says, so the same list always yields the same rules.
if [ "${#allowed[@]}" -gt 0 ]; then
  mapfile -t allowed < <(printf '%s\n' "${allowed[@]}" | sort -u)
fi
if ! command -v ufw >/dev/null; then
  echo "firewall.sh: ufw is not installed (apt-get install ufw)" >&2
  exit 1
fi

# --- ufw rules -----------------------------------------------------------------------------
# Rules this script added carry the comment "jamjam"; anything else an operator added by hand
# is left alone.
tagged_rules() {
  ufw show added | sed -n "s/^ufw allow \([0-9]*\/[a-z]*\) comment '$TAG'\$/\1/p"
}

sync_allowed() {
  local wanted=("$@") rule keep w
  # SSH first: if anything below fails, the operator can still get in.
  ufw allow "$ssh_port/tcp" comment "$TAG" >/dev/null
  while read -r rule; do
    [ -n "$rule" ] || continue
    keep=no
    for w in "$ssh_port/tcp" "${wanted[@]}"; do
      [ "$rule" = "$w" ] && keep=yes
    done
    [ "$keep" = yes ] || ufw delete allow "$rule" >/dev/null
  done < <(tagged_rules)
  for w in "${wanted[@]}"; do
    ufw allow "$w" comment "$TAG" >/dev/null
  done
}

# --- the DOCKER-USER block -------------------------------------------------------------------
docker_user_block() {
  local spec port proto bridge
  echo "$BEGIN"
  echo "*filter"
  # Declaring the chain makes ufw (iptables-restore --noflush) recreate it empty on every
  # load, so a reload never duplicates rules. Docker keeps its jump to it from FORWARD.
  echo ":DOCKER-USER - [0:0]"
  # Replies, to outside clients and to the containers' own outbound connections.
  echo "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  # Whatever a container starts (cloudflared to Cloudflare, echo-server to signaling-server)
  # goes on to Docker's own rules.
  for bridge in docker0 br-+; do
    echo "-A DOCKER-USER -i $bridge -j RETURN"
  done
  # The port the client asked for, before Docker's DNAT rewrote it, is what the allowlist names.
  for spec in "$@"; do
    port=${spec%/*}
    proto=${spec#*/}
    echo "-A DOCKER-USER -p $proto -m conntrack --ctstate NEW --ctorigdstport $port --ctdir ORIGINAL -j RETURN"
  done
  # Everything else from outside to a container is dropped: a port published by mistake, and
  # packets a neighbour on the provider's network routes straight to a container address.
  for bridge in docker0 br-+; do
    echo "-A DOCKER-USER -o $bridge -j DROP"
  done
  # Forwarding that has nothing to do with Docker is left to ufw's route rules.
  echo "-A DOCKER-USER -j RETURN"
  echo "COMMIT"
  echo "$END"
}

# Rewrites one rules file: without our block (remove), or with exactly one copy of it at the
# end (apply). Written to a temporary file and renamed, so ufw never reads half of it.
write_block() {
  local file=$1 mode=$2
  shift 2
  local tmp
  tmp=$(mktemp "$file.XXXXXX")
  awk -v begin="$BEGIN" -v end="$END" '
    $0 == begin { skip = 1; next }
    $0 == end { skip = 0; next }
    !skip { print }' "$file" >"$tmp"
  if [ "$mode" = with ]; then
    docker_user_block "$@" >>"$tmp"
  fi
  chmod --reference="$file" "$tmp"
  mv -f "$tmp" "$file"
}

flush_docker_user() {
  local tool
  for tool in iptables ip6tables; do
    if "$tool" -n -L DOCKER-USER >/dev/null 2>&1; then
      "$tool" -F DOCKER-USER
      "$tool" -A DOCKER-USER -j RETURN
    fi
  done
}

ufw_active() {
  ufw status | grep -q '^Status: active'
}

case "$action" in
  apply)
    # Rules before defaults: on a host where ufw is already active, denying first would refuse
    # new SSH connections until the allow rule arrived.
    sync_allowed "${allowed[@]}"
    ufw default deny incoming >/dev/null
    ufw default allow outgoing >/dev/null
    write_block "$UFW_DIR/after.rules" with "${allowed[@]}"
    write_block "$UFW_DIR/after6.rules" with "${allowed[@]}"
    if ufw_active; then
      ufw reload >/dev/null
    else
      ufw --force enable >/dev/null
    fi
    ;;
  remove)
    sync_allowed
    write_block "$UFW_DIR/after.rules" without
    write_block "$UFW_DIR/after6.rules" without
    # ufw does not own DOCKER-USER, so a reload would leave the old rules in place.
    flush_docker_user
    if ufw_active; then
      ufw reload >/dev/null
    fi
    ;;
esac
echo "firewall.sh: $action done; ufw allows ${ssh_port}/tcp${allowed[*]:+ ${allowed[*]}}" >&2
