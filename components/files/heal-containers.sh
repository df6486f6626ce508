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
# open", all epoch seconds or 0/1, replaced whole (written aside, synced, renamed) so a crash
# leaves the old line or the new one. State that is damaged all the same (empty after a power
# cut, cut short, garbage, not a regular file, unreadable, times far in the future) is logged
# once, removed, and that container starts a fresh incident: the worst this costs is a few
# restarts sooner than planned, where trusting it could stop healing for good.
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

# No leading zero (bash would read 060 as octal) and at most 12 digits, so that no sum or
# product below can overflow; MAX_RESTARTS at most 20, as the back-off doubles per restart.
declare -A settings=(
  [MAX_RESTARTS]="JAMJAM_HEAL_MAX_RESTARTS 5"
  [BACKOFF]="JAMJAM_HEAL_BACKOFF_SECONDS 60"
  [WINDOW]="JAMJAM_HEAL_WINDOW_SECONDS 3600"
  [NOW]="JAMJAM_NOW the current time"
  [DOCKER_TIMEOUT]="JAMJAM_DOCKER_TIMEOUT 120"
)
for setting in "${!settings[@]}"; do
  read -r variable default <<<"${settings[$setting]}"
  if [[ ! ${!setting} =~ ^[1-9][0-9]{0,11}$ ]] || { [[ $setting == MAX_RESTARTS ]] && (( MAX_RESTARTS > 20 )); }; then
    limit="a whole number from 1 to 999999999999"
    [[ $setting != MAX_RESTARTS ]] || limit="a whole number from 1 to 20"
    log "$variable=${!setting} is not $limit; unset it for the default, $default"
    exit 2
  fi
done
# The longest wait the back-off can schedule; a state time further ahead than this was not
# written by this job.
MAX_AHEAD=$(( BACKOFF << (MAX_RESTARTS - 1) ))

status=0
if [[ -e $STATE_DIR || -L $STATE_DIR ]] && [[ ! -d $STATE_DIR ]]; then
  log "state dir $STATE_DIR is not a directory; removed it, every container starts afresh"
  rm -f -- "$STATE_DIR" || true
fi
if mkdir -p -- "$STATE_DIR"; then
  # Left by a run killed between writing and renaming. A live run's temp file exists for a
  # moment only, so anything this old is no one's.
  find "$STATE_DIR" -maxdepth 1 -name '.*.tmp' -mmin +10 -delete || true
else
  log "cannot create the state dir $STATE_DIR; healing without back-off this minute"
  status=1
fi

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

# A state that cannot be written is logged and fails the run, but never stops the healing:
# the restart still happens (without a record, so without back-off) rather than leaving a
# hung container hung because, say, the disk went read-only.
save() {
  local name=$1 tmp="$STATE_DIR/.$1.tmp"
  shift
  # sync before rename: otherwise a power cut can leave the renamed file empty.
  # mv -T: a directory in the way must fail the rename, not swallow the file.
  if { printf '%s\n' "$*" >"$tmp"; } 2>/dev/null && sync -- "$tmp" && mv -fT -- "$tmp" "$STATE_DIR/$name"; then
    return 0
  fi
  rm -f -- "$tmp" 2>/dev/null || true
  log "$name: could not write its state to $STATE_DIR; its back-off and restart count are not kept"
  status=1
  return 1
}

# Sets restarts first next gave_up open for a container: its saved state, or a fresh
# incident (all 0) when there is none or it is damaged. Damaged state is logged and removed
# here, once; the next save writes a good file in its place.
load() {
  local name=$1 file="$STATE_DIR/$1" line="" problem="" fields=()
  restarts=0 first=0 next=0 gave_up=0 open=0
  [[ -e $file || -L $file ]] || return 0
  if [[ -L $file || ! -f $file ]]; then
    problem="not a regular file"
  # At most the start of one line is read, without NUL bytes (bash would warn on each): a huge
  # or binary file cannot stall the job or flood its log.
  elif ! line=$(head -c 256 -- "$file" 2>/dev/null | tr -d '\0' | head -n 1); then
    problem="unreadable"
  elif [[ -z $line ]]; then
    problem="empty"
  else
    read -r -a fields <<<"$line"
    # Checked before any arithmetic: bash evaluates a[$(...)] in a variable used in (( )).
    if (( ${#fields[@]} != 5 )); then
      problem="${#fields[@]} fields instead of 5"
    elif [[ ! "${fields[*]:0:3}" =~ ^(0|[1-9][0-9]{0,11})( (0|[1-9][0-9]{0,11})){2}$ ||
            ! "${fields[*]:3:2}" =~ ^[01]\ [01]$ ]]; then
      problem="not numbers"
    elif (( fields[1] > NOW + MAX_AHEAD || fields[2] > NOW + MAX_AHEAD )); then
      problem="times in the future"
    else
      restarts=${fields[0]} first=${fields[1]} next=${fields[2]} gave_up=${fields[3]} open=${fields[4]}
      return 0
    fi
  fi
  [[ -z $line ]] || problem+=": ${line@Q}"
  log "$name: state file $file was damaged ($problem); removed it, starting a fresh incident"
  if ! rm -rf -- "$file"; then
    log "$name: could not remove $file"
    status=1
  fi
}

when() {
  date -u -d "@$1" +%H:%MZ
}

restart() {
  local name=$1 result unsaved=""
  # The state is written before the restart: if the restart hangs until the timeout kills
  # this run, the next run still backs off instead of restarting again at once.
  (( first > 0 )) || first=$NOW
  restarts=$((restarts + 1))
  next=$(( NOW + BACKOFF * (1 << (restarts - 1)) ))
  save "$name" "$restarts" "$first" "$next" 0 1 ||
    unsaved=" (state dir not writable: no back-off or limit until it is)"
  if docker_ restart "$name" >/dev/null; then
    result="restarted $name (unhealthy)$unsaved"
  else
    result="tried to restart unhealthy $name but \`docker restart\` failed$unsaved"
    status=1
  fi
  log "$result; restart $restarts of at most $MAX_RESTARTS, next no sooner than $(when "$next")"
  "$ALERT" "heal/$name" "$result; restart $restarts of at most $MAX_RESTARTS in $((WINDOW / 60)) minutes, next no sooner than $(when "$next")." || status=1
}

# Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]*; anything else would not be a safe file name.
safe_name() {
  [[ -n $1 ]] || return 1
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || { log "skipping odd container name ${1@Q}"; return 1; }
}

mapfile -t unhealthy <<<"$unhealthy"
mapfile -t healthy <<<"$healthy"
for name in "${unhealthy[@]}"; do
  safe_name "$name" || continue
  load "$name"
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
  save "$name" "$restarts" "$first" "$next" 1 "$open" || true
done

for name in "${healthy[@]}"; do
  safe_name "$name" || continue
  [[ -e $STATE_DIR/$name || -L $STATE_DIR/$name ]] || continue
  load "$name"
  # Damaged state was removed by load: nothing is known about an incident to close.
  [[ -e $STATE_DIR/$name ]] || continue
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
    save "$name" "$restarts" "$first" "$next" "$gave_up" 0 || true
  fi
done

# Containers that no longer exist (replaced by `pulumi up`, removed by hand) keep no state.
# -r: a directory left here by hand is state too, and rm -f alone would fail on it every minute.
for file in "$STATE_DIR"/*; do
  name=${file##*/}
  if ! grep -qxF -- "$name" <<<"$present"; then
    rm -rf -- "$file" || status=1
  fi
done
exit "$status"
