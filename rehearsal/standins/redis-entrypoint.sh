#!/bin/sh
# The rehearsal's stand-in for the official redis image's docker-entrypoint.sh
# (rehearsal/images.py): options alone mean redis-server; started as root it takes /data and
# drops to the redis user; protected mode is off unless the command says otherwise, as the
# official image builds it (clients come over the container network, not loopback).
set -eu

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
  fi
fi

exec "$@"
