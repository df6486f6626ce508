#!/bin/bash
# The seed script as found on the VPS (/opt/jamjam/scripts/upload-logs-to-r2.sh), kept with its
# faults so bench/log_archive.py can compare against it. Do not fix; see issue 3.
set -e

TIMESTAMP=$(date +%Y%m%d_%H%M%S)

for dir in /var/lib/docker/containers/*; do
  id=$(basename "$dir")
  gzip -c "$dir/$id-json.log" | rclone rcat "r2:jamjam-logs/$TIMESTAMP/$id.log.gz"
done
