#!/usr/bin/env bash
# Every minute: restarts this stack's containers that Docker reports unhealthy. Docker marks a
# container unhealthy but, outside Swarm, never restarts it (`restart: always` only acts when
# the process exits), so a hung signaling-server would otherwise stay hung.
#
# Back-off, per container, so a crash loop is not restarted for ever: after restart number k of
# an incident the next one waits JAMJAM_HEAL_BACKOFF_SECONDS * 2^(k-1) (1, 2, 4, 8 minutes by
# default). After JAMJAM_HEAL_MAX_RESTARTS restarts within JAMJAM_HEAL_WINDOW_SECONDS of the first
# one, it gives up on that container, alerts once, and leaves it to an operator.
#
# A restart that works shows as healthy again: that closes the alert (RESOLVED) but keeps the
# count until the window has passed, so a container that turns unhealthy again every few
# minutes still reaches the limit. Healthy after the window (or healthy after it was given up
# on, i.e. someone fixed it) forgets the incident entirely.
#
# State: one file per container in the state dir, "restarts first_restart next_allowed gave_up
# open", all epoch seconds or 0/1.
set -euo pipefail
shopt -s nullglob

STACK="${JAMJAM_STACK:-production}"
STATE_DIR="${JAMJAM_STATE_DIR:-/var/lib/jamjam/heal-containers}"
ALERT="${JAMJAM_ALERT:-/opt/jamjam/scripts/jamjam-alert.sh}"
MAX_RESTARTS="${JAMJAM_HEAL_MAX_RESTARTS:-5}"
BACKOFF="${JAMJAM_HEAL_BACKOFF_SECONDS:-60}"
WINDOW="${JAMJAM_HEAL_WINDOW_SECONDS:-3600}"
# The clock, in epoch seconds; tests set it to step through minutes without waiting for them.
NOW="${JAMJAM_NOW:-$(date +%s)}"
# A stuck daemon must not hold the job's lock for ever; cron skips the runs that overlap.
DOCKER_TIMEOUT="${JAMJAM_DOCKER_TIMEOUT:-120}"

log() {
  echo "heal-containers: $*" >&2
}

for setting in MAX_RESTARTS BACKOFF WINDOW NOW DOCKER_TIMEOUT; do
  if [[ ! ${!setting} =~ ^[0-9]+$ ]] || (( ${!setting} == 0 )); then
    log "$setting=${!setting} is not a positive whole number (defaults: MAX_RESTARTS 5," \
        "BACKOFF 60, WINDOW 3600 seconds)"
    exit 2
  fi
done
mkdir -p "$STATE_DIR"

docker_() {
  timeout "$DOCKER_TIMEOUT" docker "$@"
}

# Containers of this stack in one health state, one name a line. Only this stack's: a host
# running a second compose project (or an operator's debugging container) is left alone.
containers() {
  docker_ ps --filter "label=jamjam.stack=$STACK" --filter "health=$1" --format '{{.Names}}'
}

if ! unhealthy=$(containers unhealthy) || ! healthy=$(containers healthy) ||
   ! present=$(docker_ ps -a --filter "label=jamjam.stack=$STACK" --format '{{.Names}}'); then
  # Nothing to heal without the daemon; dockerd's own restart policy (systemd) is what
  # brings it back, and every container with it.
  log "docker did not answer; nothing checked this minute"
  exit 1
fi

save() {
  local name=$1
  shift
  printf '%s\n' "$*" >"$STATE_DIR/.$name.tmp"
  mv -f "$STATE_DIR/.$name.tmp" "$STATE_DIR/$name"
}

when() {
  date -u -d "@$1" +%H:%MZ
}

restart() {
  local name=$1 result
  # The state is written before the restart: if the restart hangs until the timeout kills
  # this run, the next run still backs off instead of restarting again at once.
  (( first > 0 )) || first=$NOW
  restarts=$((restarts + 1))
  next=$(( NOW + BACKOFF * (1 << (restarts - 1)) ))
  save "$name" "$restarts" "$first" "$next" 0 1
  if docker_ restart "$name" >/dev/null; then
    result="restarted $name (unhealthy)"
  else
    result="tried to restart unhealthy $name but \`docker restart\` failed"
    status=1
  fi
  log "$result; restart $restarts of at most $MAX_RESTARTS, next no sooner than $(when "$next")"
  "$ALERT" "heal/$name" "$result; restart $restarts of at most $MAX_RESTARTS in $((WINDOW / 60)) minutes, next no sooner than $(when "$next")." || status=1
}

status=0
mapfile -t unhealthy <<<"$unhealthy"
mapfile -t healthy <<<"$healthy"
for name in "${unhealthy[@]}"; do
  [[ -n $name ]] || continue
  # Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]*; anything else would not be a safe file name.
  [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || { log "skipping odd container name ${name@Q}"; continue; }
  restarts=0 first=0 next=0 gave_up=0 open=0
  if [[ -f $STATE_DIR/$name ]]; then
    read -r restarts first next gave_up open <"$STATE_DIR/$name"
  fi
  if (( ! gave_up )); then
    if (( first > 0 && NOW - first >= WINDOW )); then
      # The last incident's window is over: this is a new one.
      restarts=0 first=0 next=0
    fi
    if (( NOW < next )); then
      log "$name: unhealthy; backing off, next restart no sooner than $(when "$next")"
      continue
    fi
    if (( restarts < MAX_RESTARTS )); then
      restart "$name"
      continue
    fi
    log "$name: unhealthy after $restarts restarts since $(when "$first"); giving up"
    gave_up=1 open=0
  fi
  if (( open )); then
    log "$name: still unhealthy; gave up after $restarts restarts, waiting for an operator"
  elif "$ALERT" "heal/$name" "gave up restarting $name: still unhealthy after $restarts restarts since $(when "$first"). Look at \`docker logs --tail 100 $name\` and \`docker inspect --format '{{json .State.Health}}' $name\`; it is restarted again only once it has been healthy."; then
    open=1
  else
    # Tried again every minute until the webhook takes it: this is the alert that matters most.
    status=1
  fi
  save "$name" "$restarts" "$first" "$next" 1 "$open"
done

for name in "${healthy[@]}"; do
  [[ -n $name && -f $STATE_DIR/$name ]] || continue
  read -r restarts first next gave_up open <"$STATE_DIR/$name"
  if (( open )); then
    if "$ALERT" --resolved "heal/$name" "$name is healthy again after $restarts restart(s)."; then
      open=0
    else
      status=1
    fi
  fi
  if (( gave_up || NOW - first >= WINDOW )) && (( ! open )); then
    rm -f "$STATE_DIR/$name"
  elif (( ! open )); then
    save "$name" "$restarts" "$first" "$next" "$gave_up" 0
  fi
done

# Containers that no longer exist (replaced by `pulumi up`, removed by hand) keep no state.
for file in "$STATE_DIR"/*; do
  name=${file##*/}
  if ! grep -qxF -- "$name" <<<"$present"; then
    rm -f "$file"
  fi
done
exit "$status"
