#!/bin/bash
# pid 1 of the rehearsal VPS: run by vps.py inside fresh mount, pid and network namespaces as
#   vps-init.sh ROOTFS APT_ARCHIVES APT_UPPER
# It makes ROOTFS the root (pivot_root, not chroot: runc refuses to start containers from
# a chroot), mounts what a booted Debian has (/proc, /sys with the cgroup hierarchies, /dev,
# /run), starts the enabled services as boot would, then reaps orphans until told to stop.
# Mounts made here live in this mount namespace only and vanish with it.
set -euo pipefail

root=$1
archives=$2
upper=$3
mkdir -p "$upper/data" "$upper/work"

mount --make-rprivate /
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
# A /dev of its own (not the machine's: nothing made in the VPS's /dev may appear outside),
# with the device nodes a booted system has.
mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
for node in null zero full random urandom tty; do
  touch "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
# A syslog stand-in (there is no journald): everything sent to /dev/log lands in
# /var/log/syslog, where the rehearsal reads what the jobs logged (`journalctl -t` on a real
# host). It is the machine's python (one line per datagram, which socat cannot do); it keeps
# its socket and file across the pivot below.
mkdir -p "$root/var/log"
python3 -c '
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
out = open(sys.argv[2], "ab", buffering=0)
while True:
    out.write(sock.recv(65536).rstrip(b"\n") + b"\n")
' "$root/dev/log" "$root/var/log/syslog" &
for _ in $(seq 1 50); do [ -S "$root/dev/log" ] && break; sleep 0.1; done
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mkdir -p "$root/run/lock" "$root/run/systemd/system"
# apt's downloaded packages outlive the VPS (the cache is keyed by nothing: apt checks each
# .deb's hash against the index it just fetched, so a stale one is simply downloaded again).
# An overlay rather than the cache itself: rehearsals running side by side each get their own
# apt lock and partial downloads; vps.py copies new packages back into the cache at the end.
mount -t overlay overlay \
  -o "lowerdir=$archives,upperdir=$upper/data,workdir=$upper/work" "$root/var/cache/apt/archives"

cd "$root"
mkdir -p .old-root
pivot_root . .old-root
cd /
umount -l /.old-root
rmdir /.old-root

hostname -F /etc/hostname
# A provider image generates its host keys on first boot.
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null

for unit in /etc/systemd/system/multi-user.target.wants/*.service; do
  [ -e "$unit" ] || continue
  systemctl start "$(basename "$unit")" || echo "vps-init: $(basename "$unit") did not start" >&2
done
echo "vps-init: booted" >&2

stop() {
  # Containers first (dockerd stops them), then everything else; the namespace ends with us.
  systemctl stop docker.service containerd.service >/dev/null 2>&1 || true
  kill -TERM -1 2>/dev/null || true
  sleep 0.5
  exit 0
}
trap stop TERM INT
while :; do
  # `wait` also reaps the orphans every daemon leaves to pid 1.
  sleep 1 &
  wait $! || true
done
