#!/usr/bin/env bash
# Checks the unit file with systemd-analyze, against a built binary, and
# fails on any complaint (systemd-analyze exits 0 on mere warnings).
#   systemd/verify.sh PATH/TO/mailroom
set -euo pipefail
bin=$(realpath "${1:?usage: systemd/verify.sh PATH/TO/mailroom}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/mailroom#$bin#g" "$here/mailroom.service" > "$tmp/mailroom.service"
out=$(systemd-analyze verify "$tmp/mailroom.service" 2>&1) || { echo "$out"; exit 1; }
if [[ -n $out ]]; then
  echo "$out"
  exit 1
fi
echo "systemd/mailroom.service: verified"
