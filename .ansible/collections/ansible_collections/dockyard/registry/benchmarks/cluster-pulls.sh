#!/usr/bin/env bash
# N concurrent pulls of one image, as in docs/high-availability.md ("What one machine measured").
#
#   CERT_DIR=certs CREDS=user:password benchmarks/cluster-pulls.sh HOST:PORT REPO:TAG N ROUNDS PUSHED_DIR
#
# PUSHED_DIR is the skopeo dir: layout that was pushed as REPO:TAG (its size is the image's
# size; every pull's manifest is compared with it). Prints MiB/s and the load average per round.
set -euo pipefail
if [ $# -ne 5 ]; then
  sed -n '2,7p' "$0" >&2
  exit 2
fi
target=$1 ref=$2 n=$3 rounds=$4 pushed=$5
: "${CERT_DIR:?set CERT_DIR to the directory holding the registry CA as ca.crt}"
: "${CREDS:?set CREDS to user:password}"
size=$(du -sb "$pushed" | cut -f1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq 1 "$rounds"); do
  rm -rf "${out:?}"/*
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$n"); do
    skopeo copy -q --src-cert-dir "$CERT_DIR" --src-creds "$CREDS" "docker://$target/$ref" "dir:$out/x-$i" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    cmp -s "$pushed/manifest.json" "$out/x-$i/manifest.json" || { echo "pull $i got another image" >&2; exit 1; }
  done
  read -r l1 l5 l15 _ < /proc/loadavg
  awk -v s="$start" -v e="$end" -v n="$n" -v size="$size" -v t="$target" -v r="$round" -v l="$l1 $l5 $l15" \
    'BEGIN { printf "%s round %s: %d pulls x %.1f MiB in %.1f s = %.1f MiB/s; load average %s\n",
             t, r, n, size / 1048576, e - s, n * size / 1048576 / (e - s), l }'
done
