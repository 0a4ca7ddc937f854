#!/usr/bin/env bash
# Several-instance IMAP benchmark (issue 6): `mailroom run` ingesting a
# private Dovecot on 127.0.0.1 into PostgreSQL, one instance versus three
# instances sharing one database, beside one instance on SQLite.
#
#   bench/instances.sh [N_TOTAL] [RUNS]      defaults: 20000 3
#
# The mails: the reference workload of N_TOTAL mails
# (../shared/bench/load-mailbox.py, seed 42, tag '[#{id}]': the same mails as
# `bench/imap.sh N_TOTAL`), dealt round-robin into MAILBOXES folders (default
# 6: mb1 .. mb6) of the one Dovecot user, so every folder has the same mix.
# Why several folders: each [[mailbox]] is ingested by exactly one instance at
# a time (its lease row), so three instances can only share the work if there
# are at least three mailboxes; six lets a fair split give each instance two.
# All phases watch the same six folders (after = "keep", the server is left
# untouched), so they compare like with like; one instance ingests its six
# mailboxes concurrently (one task each).
#
# Each run: a fresh Dovecot on free ports, the folders filled, a raw fetch of
# every folder (examples/imap_fetch.rs, one folder after the other: the
# sequential ceiling, and it warms Dovecot's caches), then, each on a fresh
# store with the directory imported (the 20 workload domains as accounts with
# two subscribed key contacts each, as bench/imap.sh; the migrations run then,
# before the clock starts):
#   pg1   PostgreSQL, 1 instance with all mailboxes;
#   pg3   PostgreSQL, 3 instances (INSTANCES), the same config (all
#         mailboxes), started back to back: they race for the leases, then
#         hand surplus mailboxes over at their lease renewals (every
#         mailbox_lease / 5, LEASE);
#   pgsplit PostgreSQL, 3 instances (INSTANCES) on 3 databases, each with
#           a fixed third of the mailboxes: nothing shared, so no lease, no
#           lock and no fact to agree on between them. Not a way to run
#           mailroom (a sender mailing two of them would be two contacts);
#           the ceiling of what any coordination on one store could reach
#           with these instances on this machine;
#   sqlite  SQLite, 1 instance with all mailboxes.
# (Each instance must list every mailbox: an instance holds at most
# ceil(its mailboxes / live instances) leases, so a static split, each
# instance configured with a third of the mailboxes, leaves some unwatched.)
# Rate = N_TOTAL / (start of the first instance .. the store's
# sum(mailbox_state.ingested) reaching N_TOTAL), polled every 50 ms over one
# psql session (PostgreSQL) or sqlite3 -readonly (SQLite), so polling costs
# the daemons next to nothing. Per phase also: who held which mailbox (at
# the drain, and every handover seen while draining, by instance), the mails
# each instance committed (from its log), CPU seconds of the
# instances, of this database's PostgreSQL backends, of the whole PostgreSQL
# cluster (includes anything else using it), of Dovecot, and of the machine
# (busy cores), and the store's outcome counts.
# At the end: medians over RUNS and the ratio three instances / one.
#
# Env: CARGO_TARGET_DIR, MAILROOM_SHARED, PHASES ("pg1 pg3 pgsplit sqlite"),
# MAILBOXES (6), INSTANCES (3),
# LEASE (database.mailbox_lease, 30s), DRAIN_TIMEOUT (s, 300), PG_HOST (127.0.0.1), PG_PORT (5432),
# PG_USER (postgres, trust auth), PG_CONNECTIONS (database.connections, 8),
# MAILROOM_LOG (info,mailroom::pipeline=debug: the per-batch timings
# summed below), KEEP_WORK=1 (leave the temp dir, with the daemons'
# logs). The database is mailroom_bench_<pid>, dropped on exit; everything
# else lives in a temp dir removed on exit, with Dovecot and the daemons
# stopped.
set -euo pipefail
N=${1:-20000}
RUNS=${2:-3}
K=${MAILBOXES:-6}
I=${INSTANCES:-3}
LEASE=${LEASE:-30s}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
PG_CONNECTIONS=${PG_CONNECTIONS:-8}
db=mailroom_bench_$$
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MAILROOM_SHARED:-$root/../shared}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
bin=$CARGO_TARGET_DIR/release/mailroom
fetch=$CARGO_TARGET_DIR/release/examples/imap_fetch
HZ=$(getconf CLK_TCK)
((N >= K)) || { echo "N_TOTAL ($N) must be at least MAILBOXES ($K)" >&2; exit 2; }

work=$(mktemp -d /tmp/mailroom-bench-instances.XXXXXX)
# Dovecot's mail processes run as nobody and must reach the Maildir below.
chmod 755 "$work"
daemons=()
dovecot_dir=
pg_made=
cleanup() {
  local rc=$?
  set +e
  stop_daemons
  close_poller
  [[ -n $dovecot_dir ]] && "$shared/bench/dovecot-down.sh" "$dovecot_dir" >/dev/null 2>&1
  if [[ -n $pg_made ]]; then
    for d in "$db" $(seq -f "${db}_s%g" "$I"); do
      pg -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
    done
  fi
  if [[ -n ${KEEP_WORK:-} ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg() { PGOPTIONS='-c client_min_messages=warning' psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
calc() { python3 -c "print($1)"; }

# SIGTERM every running daemon, KILL what is left after 10 s.
stop_daemons() {
  local p
  ((${#daemons[@]})) || return 0
  for p in "${daemons[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for p in "${daemons[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${daemons[@]}"; do
    kill -0 "$p" 2>/dev/null && { echo "daemon $p did not stop in 10 s; killing it" >&2; kill -KILL "$p"; }
    wait "$p" 2>/dev/null || true
  done
  daemons=()
}

# The progress poller: one psql session kept open (PostgreSQL), or a
# sqlite3 -readonly call per poll (SQLite; it never creates the file).
poll_pid=
open_poller() {  # STORE
  if [[ $1 == pg ]]; then
    coproc POLL { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -X -q -At -d "$db" 2>>"$work/poller.err"; }
    poll_pid=$POLL_PID
  fi
}
close_poller() {
  if [[ -n $poll_pid ]]; then
    { echo '\q' >&"${POLL[1]}"; } 2>/dev/null || true
    wait "$poll_pid" 2>/dev/null || true
    poll_pid=
  fi
}
# One query through the open psql session; its rows, nothing on an error.
pgq() {
  local line
  printf '%s;\n\\echo __end__\n' "$1" >&"${POLL[1]}"
  while IFS= read -r -t 30 line <&"${POLL[0]}"; do
    [[ $line == __end__ ]] && return 0
    printf '%s\n' "$line"
  done
  echo "the psql poller stopped answering" >&2
  return 1
}
sq() { sqlite3 -readonly -cmd '.timeout 2000' "$work/m.db" "$1" 2>/dev/null; }

# CPU ticks: the machine's busy and total (all cores), the PostgreSQL
# cluster (every process tree rooted at a postmaster), Dovecot's tree, then
# utime+stime of each PID given (0 if gone). A tree counts each process
# once: alive in its own stat, or reaped into its parent's cutime/cstime.
cpu_snap() {  # DOVECOT_PID [PID ...]
  python3 - "$@" <<'PY'
import os, sys
dpid, pids = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
procs = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    comm, f = s[s.index("(") + 1:s.rindex(")")], s[s.rindex(")") + 2:].split()
    procs[int(d)] = (comm, int(f[1]), int(f[11]) + int(f[12]), sum(int(x) for x in f[11:15]))
kids = {}
for p, (_, pp, _, _) in procs.items():
    kids.setdefault(pp, []).append(p)
def tree(root):
    tot, stack = 0, [root]
    while stack:
        p = stack.pop()
        if p in procs:
            tot += procs[p][3]
            stack += kids.get(p, [])
    return tot
pg_roots = [p for p, (c, pp, _, _) in procs.items() if c == "postgres" and procs.get(pp, ("",))[0] != "postgres"]
vals = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
total = sum(vals)
print(total - vals[3] - vals[4], total, sum(tree(r) for r in pg_roots), tree(dpid),
      *(procs[p][2] if p in procs else 0 for p in pids))
PY
}

echo "building (release) ..." >&2
(cd "$root" && cargo build --release --quiet --bin mailroom --example imap_fetch)

echo "generating $N mails ..." >&2
gen=$(python3 "$shared/bench/load-mailbox.py" "$N" --no-append --eml-dir "$work/eml" --tag '[#{id}]' | tail -1)
echo "workload: $gen" >&2
python3 "$root/bench/workload-directory.py" "$shared/bench/load-mailbox.py" "$work/directory.toml"
mbs=()
for k in $(seq "$K"); do mbs+=("mb$k"); done

# Fills folders mb1..mbK of the Dovecot user, mail i (in order) into folder
# i mod K, one appending process per folder; INTERNALDATE from Date:.
fill() {  # PORT USER PASS
  python3 - "$work/eml" "$K" "$@" <<'PY'
import email.utils, imaplib, json, os, sys, time
from multiprocessing import Pool
eml, k, port, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
files = sorted(f for f in os.listdir(eml) if f.endswith(".eml"))

def append(j):
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login(user, password)
    folder = f"mb{j + 1}"
    typ, resp = imap.create(folder)
    if typ != "OK":
        sys.exit(f"CREATE {folder}: {resp}")
    for f in files[j::k]:
        raw = open(os.path.join(eml, f), "rb").read()
        head = raw.split(b"\n\n", 1)[0].decode("ascii", "replace")
        date = next((l[5:].strip() for l in head.splitlines() if l.lower().startswith("date:")), None)
        when = imaplib.Time2Internaldate(email.utils.parsedate_to_datetime(date)) if date else None
        typ, resp = imap.append(folder, None, when, raw)
        if typ != "OK":
            sys.exit(f"APPEND {f} to {folder}: {resp}")
    typ, data = imap.select(folder, readonly=True)
    imap.logout()
    return int(data[0])

t0 = time.monotonic()
with Pool(k) as pool:
    counts = pool.map(append, range(k))
if sum(counts) != len(files):
    sys.exit(f"folders hold {counts}, expected {len(files)} in all")
print(json.dumps({"folders": counts, "seconds": round(time.monotonic() - t0, 2)}))
PY
}

# Writes an instance's config for STORE (pg|sqlite): every mailbox; with
# SHARE (1..I, the pgsplit phase), its own database ${db}_s<SHARE> and only
# the mailboxes j with j mod I = SHARE - 1.
write_config() {  # FILE STORE [SHARE]
  local file=$1 store=$2 share=${3:-} j
  {
    echo "[database]"
    if [[ $store == pg ]]; then
      echo "url = \"postgres://$PG_USER@$PG_HOST:$PG_PORT/$db${share:+_s$share}\""
      echo "connections = $PG_CONNECTIONS"
      echo "mailbox_lease = \"$LEASE\""
      echo "attachments = \"$work/attachments\""
    else
      echo "url = \"sqlite:$work/m.db\""
    fi
    printf '[mail]\nfrom = "support@provider.test"\ndomain = "provider.test"\n'
    for j in $(seq 0 $((K - 1))); do
      [[ -n $share ]] && ((j % I != share - 1)) && continue
      printf '\n[[mailbox]]\nname = "%s"\nhost = "127.0.0.1"\nport = %s\ntls = "none"\n' "${mbs[j]}" "$IMAP_PORT"
      printf 'username = "%s"\npassword = "%s"\nfolder = "%s"\nafter = "keep"\nbatch = 200\n' \
        "$MAIL_USER" "$MAIL_PASS" "${mbs[j]}"
    done
  } > "$file"
}

declare -A rates steadies
read -r -a phase_names <<<"${PHASES:-pg1 pg3 pgsplit sqlite}"
declare -A label=([pg1]="PostgreSQL, 1 instance" [pg3]="PostgreSQL, $I instances" [sqlite]="SQLite, 1 instance"
                  [pgsplit]="PostgreSQL, $I instances, $I databases")
raws=()
distributions=()

# One phase on a fresh store: start the instances, wait until all N are
# ingested, report, stop them.
phase() {  # NAME RUN
  local name=$1 run=$2 store=pg count=1 split= i
  case $name in
    pg1) ;;
    pg3) count=$I ;;
    pgsplit) count=$I split=1 ;;
    sqlite) store=sqlite ;;
  esac
  rm -rf "$work/m.db"* "$work/attachments" "$work"/daemon-*.log
  if [[ $store == pg ]]; then
    pg -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    pg -d postgres -c "CREATE DATABASE $db" >/dev/null
    pg_made=1
    if [[ -n $split ]]; then
      for i in $(seq "$I"); do
        pg -d postgres -c "DROP DATABASE IF EXISTS ${db}_s$i WITH (FORCE)" >/dev/null
        pg -d postgres -c "CREATE DATABASE ${db}_s$i" >/dev/null
      done
    fi
  fi
  for i in $(seq "$count"); do write_config "$work/mailroom-$i.toml" "$store" ${split:+$i}; done
  # Creates the schema too, before the clock starts.
  local imports=1
  [[ -n $split ]] && imports=$count
  for i in $(seq "$imports"); do
    "$bin" --config "$work/mailroom-$i.toml" directory import "$work/directory.toml" >/dev/null
  done
  open_poller "$store"
  # pgsplit: the poller reads the share databases through dblink, over
  # connections opened once.
  local progress="SELECT 'n ' || coalesce(sum(ingested), 0) FROM mailbox_state
                  UNION ALL SELECT 'h ' || name || ' ' || holder FROM mailbox_leases"
  if [[ -n $split ]]; then
    pgq "CREATE EXTENSION IF NOT EXISTS dblink" >/dev/null || exit 1
    local counts=() holders=()
    for i in $(seq "$I"); do
      pgq "SELECT dblink_connect('s$i', 'host=$PG_HOST port=$PG_PORT user=$PG_USER dbname=${db}_s$i')" >/dev/null || exit 1
      counts+=("SELECT n FROM dblink('s$i', 'SELECT coalesce(sum(ingested), 0) FROM mailbox_state') AS t(n bigint)")
      holders+=("SELECT 'h ' || name || ' ' || holder FROM dblink('s$i', 'SELECT name, holder FROM mailbox_leases') AS t(name text, holder text)")
    done
    progress="SELECT 'n ' || sum(n) FROM ($(printf '%s UNION ALL ' "${counts[@]}") SELECT 0) c
              UNION ALL $(printf '%s UNION ALL ' "${holders[@]}") SELECT 'x' WHERE false"
  fi

  local s0 start now got first_at= first_got= drained lines line h
  declare -A seen=()
  read -r -a s0 < <(cpu_snap "$DOVECOT_PID")
  start=$EPOCHREALTIME
  for i in $(seq "$count"); do
    NO_COLOR=1 MAILROOM_LOG=${MAILROOM_LOG:-info,mailroom::pipeline=debug} "$bin" --config "$work/mailroom-$i.toml" run 2>"$work/daemon-$i.log" &
    daemons+=($!)
  done
  local deadline=$(($(date +%s) + DRAIN_TIMEOUT))
  while :; do
    got=-1
    if [[ $store == pg ]]; then
      lines=$(pgq "$progress") || exit 1
      while IFS= read -r line; do
        case $line in
          n\ *) got=${line#n } ;;
          h\ *) h=${line#h }; [[ -n ${seen[$h]:-} ]] || seen[$h]=$EPOCHREALTIME ;;
        esac
      done <<<"$lines"
    else
      got=$(sq "SELECT coalesce(sum(ingested), 0) FROM mailbox_state") || got=-1
      [[ -n $got ]] || got=-1
    fi
    now=$EPOCHREALTIME
    [[ -z $first_at && $got -gt 0 ]] && first_at=$now first_got=$got
    ((got >= N)) && break
    for i in "${!daemons[@]}"; do
      kill -0 "${daemons[i]}" 2>/dev/null || {
        echo "$name: instance $((i + 1)) died:" >&2; tail -n 20 "$work/daemon-$((i + 1)).log" >&2; exit 1; }
    done
    if (($(date +%s) > deadline)); then
      echo "$name: not drained after ${DRAIN_TIMEOUT}s: $got/$N ingested" >&2
      tail -n 20 "$work"/daemon-*.log >&2
      exit 1
    fi
    sleep 0.05
  done
  drained=$now
  # CPU at the drain: this database's backends are the instances' pooled
  # connections, still open (the poller's own backend left out).
  local backends=() s1 hwm=()
  if [[ $store == pg ]]; then
    mapfile -t backends < <(pgq "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() OR datname LIKE '${db}_s%')
                                   AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND application_name NOT LIKE 'dblink%'")
  fi
  read -r -a s1 < <(cpu_snap "$DOVECOT_PID" "${daemons[@]}" "${backends[@]}")
  for i in "${!daemons[@]}"; do hwm+=("$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/${daemons[i]}/status")"); done
  # Lease holders as `status` shows them now, by instance.
  local status pids_text="${daemons[*]}"
  status=$(timeout 10 "$bin" --config "$work/mailroom-1.toml" status --json)
  if [[ -n $split ]]; then
    for i in $(seq 2 "$count"); do
      status=$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1]) + json.loads(sys.argv[2])))' \
        "$status" "$(timeout 10 "$bin" --config "$work/mailroom-$i.toml" status --json)")
    done
  fi
  stop_daemons
  close_poller

  local rate steady drain_s first_s
  rate=$(calc "round($N / ($drained - $start))")
  drain_s=$(calc "round($drained - $start, 2)")
  first_s=$(calc "round($first_at - $start, 2)")
  steady=$(calc "round(($N - $first_got) / ($drained - $first_at)) if $drained > $first_at else 'n/a'")
  rates[$name]+=" $rate"
  steadies[$name]+=" $steady"

  # CPU seconds over the phase.
  local wall cpu_line mr=0 be=0 per=()
  wall=$(calc "$drained - $start")
  for i in $(seq 0 $((count - 1))); do
    per+=("$(calc "round(${s1[4 + i]} / $HZ, 2)")")
    mr=$((mr + s1[4 + i]))
  done
  for i in $(seq 0 $((${#backends[@]} - 1))); do be=$((be + s1[4 + count + i])); done
  cpu_line=$(python3 -c "
hz, w = $HZ, $wall
print(f'cpu s: instances {$mr / hz:.2f} (${per[*]}), db backends {$be / hz:.2f}, '
      f'postgres cluster {($((s1[2] - s0[2]))) / hz:.2f}, dovecot {($((s1[3] - s0[3]))) / hz:.2f}; '
      f'machine busy {($((s1[0] - s0[0]))) / hz:.2f} s = {($((s1[0] - s0[0]))) / hz / w:.2f} of $(nproc) cores '
      f'(anything else: {($((s1[0] - s0[0] - s1[2] + s0[2] - s1[3] + s0[3] - mr))) / hz:.2f} s)')")

  # Who held what: at the drain (`status`), and when each holder was first
  # seen while draining (a change of holder is a handover), by instance.
  local dist pairs=()
  for h in "${!seen[@]}"; do pairs+=("$h ${seen[$h]}"); done
  dist=$(START=$start STATUS="$status" PIDS="$pids_text" python3 -c '
import json, os, sys
pids, start = os.environ["PIDS"].split(), float(os.environ["START"])
def who(h):
    p = h.split(":")[-2] if h and h.count(":") >= 2 else ""
    return f"i{pids.index(p) + 1}" if p in pids else (h or "none")
seen = {}
for arg in sys.argv[1:]:
    name, holder, t = arg.split(" ")
    seen.setdefault(name, []).append((float(t) - start, who(holder)))
at_drain = {m["name"]: who(m.get("holder")) for m in json.loads(os.environ["STATUS"])}
names = sorted(set(seen) | set(at_drain), key=lambda n: (len(n), n))
per = {}
for n in names:
    per.setdefault(at_drain.get(n, "none"), []).append(n)
out = "holders at drain: " + ", ".join(f"{n}={at_drain.get(n, chr(45))}" for n in names)
out += " (" + ", ".join(f"{i}: {len(v)}" for i, v in sorted(per.items())) + ")"
moves = [f"{n} " + " > ".join(f"{h}@{t:.1f}s" for t, h in sorted(seen[n])) for n in names if len(seen.get(n, [])) > 1]
if seen:
    out += "; first holders: " + ", ".join(f"{n}={sorted(seen[n])[0][1]}" for n in names if n in seen)
    out += "; handovers: " + (", ".join(moves) if moves else "none")
print(out)
' "${pairs[@]}")

  # The store: outcomes; anything the daemons logged above info.
  local outcomes
  if [[ $store == pg ]]; then
    local d dbs=("$db")
    [[ -n $split ]] && dbs=($(seq -f "${db}_s%g" "$I"))
    outcomes=$(for d in "${dbs[@]}"; do pg -d "$d" -c "SELECT outcome, count(*) FROM messages GROUP BY outcome"; done |
      awk -F'|' '{n[$1] += $2} END {for (o in n) printf "%s=%s, ", o, n[o]}')
  else
    outcomes=$(sqlite3 -readonly -separator = -newline ', ' "$work/m.db" "SELECT outcome, count(*) FROM messages GROUP BY outcome ORDER BY outcome")
  fi
  # The pipeline's "batch committed" debug lines, summed over all instances:
  # parse is outside the write lock; load (which includes waiting for the
  # lock: BEGIN IMMEDIATE / pg_advisory_xact_lock), decide, write and commit
  # are inside it.
  local batches logs=()
  for i in $(seq "$count"); do logs+=("$work/daemon-$i.log"); done
  batches=$(python3 -c '
import re, sys
unit = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
keys = ("parse", "load", "decide", "write", "commit")
tot, n, mails, each = dict.fromkeys(keys, 0.0), 0, 0, []
lines = []
for path in sys.argv[1:]:
    each.append(0)
    for line in open(path, encoding="utf-8", errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if "batch committed" not in line:
            continue
        lines.append(line)
        m = re.search(r"mails=(\d+)", line)
        each[-1] += int(m.group(1)) if m else 0
for line in lines:
    n += 1
    m = re.search(r"mails=(\d+)", line)
    mails += int(m.group(1)) if m else 0
    for k in keys:
        m = re.search(k + r"=([0-9.]+)(ns|µs|us|ms|s)\b", line)
        if m:
            tot[k] += float(m.group(1)) * unit[m.group(2)]
print(f"{n} batches of {mails} mails (by instance: {chr(32).join(map(str, each))}), summed s: "
      + ", ".join(f"{k} {tot[k]:.2f}" for k in keys)
      if n else "no batch timings (MAILROOM_LOG without mailroom::pipeline=debug)")' "${logs[@]}")
  local pgstats=
  if [[ $store == pg ]]; then
    pgstats=$(pg -d postgres -c "SELECT format('transactions %s, rows inserted %s updated %s deleted %s returned %s fetched %s, blocks read %s hit %s, deadlocks %s',
        xact_commit, tup_inserted, tup_updated, tup_deleted, tup_returned, tup_fetched, blks_read, blks_hit, deadlocks)
      FROM pg_stat_database WHERE datname = '${dbs[0]}'")
    # Sequential scans: a table read whole per batch makes the rate fall
    # as the store grows.
    pgstats+="; seq scans (rows read): $(pg -d "${dbs[0]}" -c "SELECT string_agg(format('%s %s (%s)', relname, seq_scan, seq_tup_read), ', ' ORDER BY seq_tup_read DESC)
      FROM (SELECT * FROM pg_stat_user_tables WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT 4) t")"
  fi
  local warns
  warns=$(sed 's/\x1b\[[0-9;]*m//g' "$work"/daemon-*.log | grep -cE ' (WARN|ERROR) ' || true)
  echo "run $run $name: $N mails in $drain_s s = $rate msg/s (first $first_got committed at $first_s s, then $steady msg/s); VmHWM ${hwm[*]} MB"
  echo "    $cpu_line"
  echo "    $dist"
  echo "    batches: $batches"
  [[ -n $pgstats ]] && echo "    pg_stat_database (whole phase, directory import included): $pgstats"
  echo "    store: ${outcomes%, }; daemon logs: $warns WARN/ERROR"
  ((warns)) && sed 's/\x1b\[[0-9;]*m//g' "$work"/daemon-*.log | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | sed -n 's/^/      /; 1,5p'
  [[ $name == pg3 ]] && distributions+=("run $run: $dist")
  return 0
}

for run in $(seq "$RUNS"); do
  # A fresh Dovecot on two free ports of 127.0.0.1.
  read -r IMAP_PORT IMAPS_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
PY
  )
  export IMAP_PORT IMAPS_PORT
  dovecot_dir=$work/dovecot-$run
  up=$(timeout 30 "$shared/bench/dovecot-up.sh" "$dovecot_dir")
  eval "$(grep -E '^[A-Z_]+=[^ ;&|]*$' <<<"$up")"
  echo "run $run: dovecot on 127.0.0.1:$IMAP_PORT as $MAIL_USER; filling ${K} folders ..." >&2
  filled=$(fill "$IMAP_PORT" "$MAIL_USER" "$MAIL_PASS")
  echo "run $run: filled $filled" >&2

  # Raw fetch, one folder after the other (also warms Dovecot's caches).
  fetched=0 secs=0
  for m in "${mbs[@]}"; do
    line=$(timeout 300 "$fetch" 127.0.0.1 "$IMAP_PORT" "$MAIL_USER" "$MAIL_PASS" "$m")
    [[ $line =~ ^fetched\ ([0-9]+)\ mails\ in\ ([0-9.]+)\ s ]] || { echo "imap_fetch: $line" >&2; exit 1; }
    fetched=$((fetched + BASH_REMATCH[1]))
    secs=$(calc "$secs + ${BASH_REMATCH[2]}")
  done
  ((fetched == N)) || { echo "raw fetch saw $fetched mails, expected $N" >&2; exit 1; }
  raws+=("$(calc "round($N / $secs)")")
  echo "run $run raw fetch: $N mails in $(calc "round($secs, 3)") s = ${raws[-1]} mails/s (folders one after the other)"

  for name in "${phase_names[@]}"; do phase "$name" "$run"; done
  "$shared/bench/dovecot-down.sh" "$dovecot_dir" >/dev/null 2>&1 || true
  dovecot_dir=
done

echo
echo "== bench/instances.sh N_TOTAL=$N RUNS=$RUNS: $K mailboxes of ~$((N / K)) mails, medians =="
for name in "${phase_names[@]}"; do
  # shellcheck disable=SC2086
  printf '%-42s %6s msg/s  (runs:%s; after the first commit: %s msg/s)\n' \
    "${label[$name]}:" "$(median ${rates[$name]})" "${rates[$name]}" "$(median ${steadies[$name]})"
done
ratio() {  # NAME OVER WHAT
  [[ -n ${rates[$1]:-} && -n ${rates[$2]:-} ]] || return 0
  # shellcheck disable=SC2086
  printf '%-42s %s\n' "$3:" "$(calc "round($(median ${rates[$1]}) / $(median ${rates[$2]}), 2)")"
}
ratio pg3 pg1 "PostgreSQL $I instances / 1 instance"
ratio pgsplit pg1 "PostgreSQL $I instances on $I databases / 1 (no shared store: the ceiling of any coordination)"
ratio pg1 sqlite "PostgreSQL 1 instance / SQLite"
echo "raw fetch ceiling (sequential):            $(median "${raws[@]}") mails/s"
echo "leases with $I instances on all mailboxes:"
printf '  %s\n' "${distributions[@]}"
