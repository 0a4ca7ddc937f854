#!/usr/bin/env bash
# Fan-out benchmark: one new ticket on an account with N subscribers (default
# 2,000), delivered through a private Postfix on 127.0.0.1 that accepts and
# discards (bench/postfix-up.sh), so what is measured is mailroom's side:
# claiming, composing, SMTP, recording.
#
#   bench/fanout.sh [N] [RUNS]      defaults: 2000 3
#
# For each run, a fresh SQLite store gets the directory and the one mail
# (`replay`), then `mailroom outbox send` is timed until every notification
# is recorded as accepted by Postfix (250), in three modes:
#   - pool: CONNECTIONS (8) pooled connections, mailroom's default;
#   - per-mail: smtp.pool = false and one connection at a time: a new SMTP
#     connection (and TLS handshake) per notification, sent one after the
#     other, the way django-helpdesk's send_mail loop sends;
#   - per-mail-parallel: smtp.pool = false with CONNECTIONS in parallel, to
#     show what the connection reuse alone is worth.
# Prints notifications/s per run and mode, the medians and the ratios.
# Env: CARGO_TARGET_DIR, CONNECTIONS (8), TLS (starttls, the default, on
# Postfix's generated certificate; or none), QUEUE_ON_DISK=1 (Postfix's
# queue on disk instead of tmpfs).
set -euo pipefail
N=${1:-2000}
RUNS=${2:-3}
CONNECTIONS=${CONNECTIONS:-8}
TLS=${TLS:-starttls}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
bin=$CARGO_TARGET_DIR/release/mailroom
(cd "$root" && cargo build --release --quiet)

work=$(mktemp -d)
# Postfix's queue goes on tmpfs (/dev/shm) unless QUEUE_ON_DISK=1: Postfix
# fsyncs every queue file, which on this VM's disk costs more than all of
# mailroom's work per mail; the point is to measure mailroom's side.
if [[ ${QUEUE_ON_DISK:-0} != 1 && -d /dev/shm ]]; then
  sink=$(mktemp -d /dev/shm/mailroom-fanout.XXXXXX)
else
  sink=$work
fi
# Postfix (user postfix) must reach its data directory inside.
chmod 755 "$work" "$sink"
cleanup() {
  "$root/bench/postfix-down.sh" "$sink/postfix" >/dev/null 2>&1 || true
  rm -rf "$work" "$sink"
}
trap cleanup EXIT
DOMAINS=fanout.test "$root/bench/postfix-up.sh" "$sink/postfix" >/dev/null
port=$(cat "$sink/postfix/port")
echo "postfix (discarding, queue in $sink) on 127.0.0.1:$port; $N subscribers; $CONNECTIONS connections; tls=$TLS"

python3 - "$N" "$work/directory.toml" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
out = ['[[account]]\nnumber = "OCN-1"\nname = "Fanout SA"\ndomains = ["fanout.test"]\nlanguage = "en"\n']
for i in range(n):
    email = f"sub{i:05d}@fanout.test"
    out.append(f'[[contact]]\nemail = "{email}"\nfirst_name = "Sub"\nlast_name = "{i}"\naccount = "OCN-1"\n')
    out.append(f'[[subscription]]\ncontact = "{email}"\ngroup = "key_contact"\naccount = "OCN-1"\n')
open(path, "w").write("\n".join(out))
PY
cat > "$work/outage.eml" <<'EML'
From: Requester <requester@fanout.test>
To: support@provider.test
Subject: Total outage at our main site
Message-ID: <outage-1@fanout.test>
Date: Mon, 2 Mar 2026 10:00:00 +0100

Everything is down since 09:40.
EML

tls_lines() {
  if [[ $TLS == starttls ]]; then
    printf 'tls = "starttls"\nca_file = "%s"\n' "$sink/postfix/ca.pem"
  else
    printf 'tls = "none"\n'
  fi
}

run_once() { # mode -> prints rate
  local mode=$1 pool=true connections=$CONNECTIONS
  [[ $mode == per-mail* ]] && pool=false
  [[ $mode == per-mail ]] && connections=1
  rm -f "$work"/m.db*
  cat > "$work/mailroom.toml" <<TOML
[database]
url = "sqlite:$work/m.db"
[mail]
from = "support@provider.test"
domain = "provider.test"
[smtp]
host = "127.0.0.1"
port = $port
$(tls_lines)
connections = $connections
pool = $pool
TOML
  "$bin" --config "$work/mailroom.toml" directory import "$work/directory.toml" >/dev/null
  "$bin" --config "$work/mailroom.toml" replay "$work/outage.eml" >/dev/null
  local start end out
  start=$(date +%s.%N)
  out=$("$bin" --config "$work/mailroom.toml" outbox send 2>"$work/send.log")
  end=$(date +%s.%N)
  local sent
  sent=$(sed -n 's/^sent \([0-9]*\),.*/\1/p' <<<"$out")
  if [[ $sent -lt $N ]]; then
    echo "only $sent of $N+1 sent: $out" >&2
    exit 1
  fi
  python3 -c "print(round($sent/($end-$start)))"
}

declare -A rates
for run in $(seq "$RUNS"); do
  for mode in pool per-mail per-mail-parallel; do
    r=$(run_once "$mode")
    rates[$mode]+="$r "
    echo "run $run $mode: $r notifications/s"
  done
done
python3 - "${rates[pool]}" "${rates[per-mail]}" "${rates[per-mail-parallel]}" <<'PY'
import statistics, sys
pool, seq, par = (statistics.median(int(x) for x in a.split()) for a in sys.argv[1:4])
print(f"median pool: {pool:.0f}/s; one connection per mail: {seq:.0f}/s sequential (django-helpdesk), "
      f"{par:.0f}/s in parallel; pool vs sequential {pool / seq:.1f}x, vs parallel {pool / par:.1f}x")
PY
