#!/usr/bin/env bash
# Replay benchmark: N generated mails (the reference workload of
# ../shared/bench/load-mailbox.py: ~70% new requests from ~N/5 senders over
# 20 domains, ~30% replies, HTML, attachments, four languages) replayed into
# a fresh SQLite store with durable commits (WAL, synchronous=FULL).
#
#   bench/replay.sh [N] [RUNS]      defaults: 10000 3
#   FLOOR=1 bench/replay.sh ...     then the store's floor (bench/store_floor.py)
#   BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432 bench/replay.sh ...
#                                   the same into a fresh PostgreSQL database
#                                   (mailroom_bench_replay, dropped after)
#
# Prints, per run, messages/s end to end (parse, classify, contact, thread,
# ticket, outbox rows, commit) and peak RSS, then the median.
set -euo pipefail
N=${1:-10000}
RUNS=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MAILROOM_SHARED:-$root/../shared}
eml=${MAILROOM_BENCH_EML:-/tmp/mailroom-bench-eml-$N}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
bin=$CARGO_TARGET_DIR/release/mailroom

if [[ ! -f $eml/.complete ]]; then
  echo "generating $N mails into $eml (once) ..." >&2
  rm -rf "$eml"
  python3 "$shared/bench/load-mailbox.py" "$N" --no-append --eml-dir "$eml" --tag '[#{id}]' >/dev/null
  touch "$eml/.complete"
fi
(cd "$root" && cargo build --release --quiet)

work=$(mktemp -d)
pg=${BENCH_POSTGRES:-}
pgdb=mailroom_bench_replay
admin() { psql -q "$pg/postgres" -c "$1" >/dev/null; }
cleanup() {
  [[ -n $pg ]] && admin "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)"
  rm -rf "$work"
}
trap cleanup EXIT
# The workload's 20 customer domains as accounts, each with two key
# contacts subscribed, so every new ticket fans out.
python3 "$root/bench/workload-directory.py" "$shared/bench/load-mailbox.py" "$work/directory.toml"

rates=()
for run in $(seq "$RUNS"); do
  rm -rf "$work"/m.db* "$work/attachments"
  url="sqlite:$work/m.db"
  if [[ -n $pg ]]; then
    admin "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)"
    admin "CREATE DATABASE $pgdb"
    url="$pg/$pgdb"
  fi
  cat > "$work/mailroom.toml" <<TOML
[database]
url = "$url"
attachments = "$work/attachments"
[mail]
from = "support@provider.test"
domain = "provider.test"
TOML
  "$bin" --config "$work/mailroom.toml" directory import "$work/directory.toml" >/dev/null
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/mailroom.toml" replay --json "$eml" > "$work/summary.json"
  end=$(date +%s.%N)
  rss_kb=$(tail -1 "$work/rss")
  rate=$(python3 -c "import json;s=json.load(open('$work/summary.json'));print(round(s['processed']/($end-$start)))")
  echo "run $run: $(python3 -c "import json;print(json.load(open('$work/summary.json')))")"
  echo "run $run: $rate messages/s, $(python3 -c "print(round(($end-$start),2))") s, peak RSS $((rss_kb / 1024)) MB"
  rates+=("$rate")
done
printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print "median: " a[int((NR+1)/2)] " messages/s over " NR " runs"}'
# FLOOR=1: the same rows inserted again by SQLite alone (bench/store_floor.py),
# the floor under the end-to-end figure.
if [[ ${FLOOR:-0} == 1 && -z $pg ]]; then
  python3 "$root/bench/store_floor.py" "$work/m.db" "$RUNS"
fi
