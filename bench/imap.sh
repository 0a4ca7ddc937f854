#!/usr/bin/env bash
# IMAP benchmark: the daemon (`mailroom run`) against a private Dovecot on
# 127.0.0.1 holding N mails of the reference workload
# (../shared/bench/load-mailbox.py, the same mails as bench/replay.sh).
#
#   bench/imap.sh [N]               default: 5000
#
# Prints:
#   - raw fetch ceiling: examples/imap_fetch.rs, UID FETCH BODY.PEEK[] in
#     chunks of 200 over the crate's own connection code, nothing else;
#   - ingest rate: `mailroom run` started on the full mailbox (fresh SQLite
#     store, durable commits, the 20 domains as accounts with two subscribed
#     key contacts each so every new ticket fans out), messages/s from the
#     daemon's start until the store shows all N ingested (read by one
#     long-lived sqlite3 reader, checked against `status` at the end);
#   - latency under IDLE: with the daemon drained and idle, M mails
#     (default 50, env LATENCY_MAILS) appended one at a time, APPEND to
#     the store showing it committed, p50 / p99 / max;
#   - peak RSS of the daemon (VmHWM when drained, and /usr/bin/time's
#     maximum over the whole run).
#
# Env: CARGO_TARGET_DIR, MAILROOM_SHARED, DRAIN_TIMEOUT (s, default 300),
# LATENCY_MAILS (50), RAW_RUNS (3), MAILROOM_LOG (the daemon's log filter,
# default info), BENCH_LOG (copy the daemon's log there on exit). Everything runs on 127.0.0.1 in a temp
# dir that is removed on exit, with Dovecot and the daemon stopped.
set -euo pipefail
N=${1:-5000}
M=${LATENCY_MAILS:-50}
RAW_RUNS=${RAW_RUNS:-3}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${MAILROOM_SHARED:-$root/../shared}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
bin=$CARGO_TARGET_DIR/release/mailroom
# The example as built below; the same as `cargo run --release --example
# imap_fetch -- ...`, without cargo rebuilding mid-run if src/ changed.
fetch=$CARGO_TARGET_DIR/release/examples/imap_fetch

work=$(mktemp -d /tmp/mailroom-bench-imap.XXXXXX)
# Dovecot's mail processes run as nobody and must reach the Maildir below.
chmod 755 "$work"
timepid=
daemon=
cleanup() {
  local rc=$?
  set +e
  if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon"
    for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$daemon" 2>/dev/null && kill -KILL "$daemon"
  fi
  [[ -n $timepid ]] && wait "$timepid" 2>/dev/null
  [[ -n ${BENCH_LOG:-} && -f $work/daemon.log ]] && cp "$work/daemon.log" "$BENCH_LOG"
  "$shared/bench/dovecot-down.sh" "$work/dovecot" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building (release) ..." >&2
(cd "$root" && cargo build --release --quiet --bin mailroom --example imap_fetch)

# Two free ports on 127.0.0.1 for Dovecot (IMAP, IMAPS).
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
up=$(timeout 30 "$shared/bench/dovecot-up.sh" "$work/dovecot")
eval "$(grep -E '^[A-Z_]+=[^ ;&|]*$' <<<"$up")"
echo "dovecot on 127.0.0.1:$IMAP_PORT as $MAIL_USER" >&2

echo "appending $N mails ..." >&2
load=$(timeout 900 python3 "$shared/bench/load-mailbox.py" "$N" --clear --port "$IMAP_PORT" \
  --user "$MAIL_USER" --password "$MAIL_PASS" --tag '[#{id}]' | tail -1)
echo "loaded: $load" >&2

# 1. Raw fetch ceiling (median of RAW_RUNS).
raw_rates=()
for run in $(seq "$RAW_RUNS"); do
  line=$(timeout 300 "$fetch" 127.0.0.1 "$IMAP_PORT" "$MAIL_USER" "$MAIL_PASS")
  echo "raw fetch $run: $line"
  [[ $line =~ ^fetched\ ([0-9]+)\ mails ]] && [[ ${BASH_REMATCH[1]} == "$N" ]] \
    || { echo "raw fetch saw ${BASH_REMATCH[1]:-?} mails, expected $N" >&2; exit 1; }
  [[ $line =~ :\ ([0-9]+)\ mails/s ]] && raw_rates+=("${BASH_REMATCH[1]}")
done
raw=$(printf '%s\n' "${raw_rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')

# 2. The directory: the workload's 20 customer domains as accounts, each
# with two key contacts subscribed, so every new ticket fans out.
python3 "$root/bench/workload-directory.py" "$shared/bench/load-mailbox.py" "$work/directory.toml"

cfg=$work/mailroom.toml
cat > "$cfg" <<TOML
[database]
url = "sqlite:$work/m.db"
[mail]
from = "support@provider.test"
domain = "provider.test"

[[mailbox]]
name = "support"
host = "127.0.0.1"
port = $IMAP_PORT
tls = "none"
username = "$MAIL_USER"
password = "$MAIL_PASS"
after = "keep"
batch = 200
TOML
"$bin" --config "$cfg" directory import "$work/directory.toml" >/dev/null

# `ingested` of the one mailbox, read straight from the store by a
# long-lived reader (python's sqlite3, read-only): a `mailroom status`
# process per poll cost ~17 ms of CPU each, a third of a core at one poll
# every 50 ms, taken from the daemon on this 2-core machine. `status` is
# checked against it once the mailbox is drained.
ingested() {
  timeout 10 "$bin" --config "$cfg" status --json \
    | python3 -c 'import json,sys; r=[m for m in json.load(sys.stdin) if m["name"]=="support"]; print(r[0]["ingested"] if r else 0)'
}
export BENCH_DB=$work/m.db
# Prints "first_at first_got drained_at" (epoch seconds) once N are in.
watch_drain() {
  python3 - "$N" "$daemon" "$DRAIN_TIMEOUT" <<'PY'
import os, sqlite3, sys, time
n, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
db = os.environ["BENCH_DB"]
conn, first, got, deadline = None, None, 0, time.time() + timeout
while True:
    try:
        conn = conn or sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        row = conn.execute("SELECT ingested FROM mailbox_state WHERE name = 'support'").fetchone()
        got = row[0] if row else 0
    except sqlite3.Error:
        conn, got = None, 0  # not created yet, or busy: asked again
    now = time.time()
    if first is None and got > 0:
        first = (now, got)
    if got >= n:
        print(first[0], first[1], now)
        sys.exit(0)
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the daemon died")
    if now > deadline:
        sys.exit(f"not drained after {timeout:.0f}s: {got}/{n} ingested")
    time.sleep(0.01)
PY
}

# 3. Ingest rate: start the daemon on the full mailbox, wait until drained.
echo "starting the daemon ..." >&2
start=$(date +%s.%N)
MAILROOM_LOG=${MAILROOM_LOG:-info} /usr/bin/time -f %M -o "$work/rss" \
  "$bin" --config "$cfg" run 2>"$work/daemon.log" &
timepid=$!
for _ in $(seq 50); do
  daemon=$(pgrep -P "$timepid" || true)
  [[ -n $daemon ]] && break
  sleep 0.02
done
[[ -n $daemon ]] || { echo "the daemon did not start" >&2; cat "$work/daemon.log" >&2; exit 1; }

read -r first_at first_got drained < <(watch_drain) || true
if [[ -z ${drained:-} ]]; then
  echo "the daemon did not drain the mailbox:" >&2
  tail -20 "$work/daemon.log" >&2
  exit 1
fi
[[ $(ingested) -ge $N ]] || { echo "the store shows the mailbox drained, \`status\` does not" >&2; exit 1; }
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$daemon/status")
rate=$(python3 -c "print(round($N / ($drained - $start)))")
drain_s=$(python3 -c "print(round($drained - $start, 2))")
first_s=$(python3 -c "print(round($first_at - $start, 2))")
steady=$(python3 -c "d = $drained - $first_at; print(round(($N - $first_got) / d) if d > 0 else 'n/a')")
echo "ingest: $N mails in $drain_s s (first $first_got committed after $first_s s, then $steady messages/s): $rate messages/s, VmHWM $((hwm_kb / 1024)) MB"

# 4. Latency under IDLE: one mail at a time, APPEND -> committed.
for _ in $(seq 100); do
  [[ $(timeout 10 "$bin" --config "$cfg" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])') == idle ]] && break
  sleep 0.05
done
echo "appending $M mails one at a time ..." >&2
lat=$(timeout 600 python3 - "$bin" "$cfg" "$IMAP_PORT" "$MAIL_USER" "$MAIL_PASS" "$N" "$M" <<'PY'
# A second, bare IDLE session timestamps the server's EXISTS for each append:
# the floor any IDLE client sees (Dovecot delays IDLE notifications ~0.5 s).
import imaplib, json, os, queue, sqlite3, statistics, sys, threading, time, uuid
from email.message import EmailMessage
from email.utils import formatdate
binary, cfg, port, user, password, base, m = sys.argv[1:8]
base, m = int(base), int(m)

store = sqlite3.connect(f"file:{os.environ['BENCH_DB']}?mode=ro", uri=True, timeout=5)
def ingested():
    return store.execute("SELECT ingested FROM mailbox_state WHERE name = 'support'").fetchone()[0]

idler = imaplib.IMAP4("127.0.0.1", int(port))
idler.login(user, password)
idler.select("INBOX", readonly=True)
idler.sock.settimeout(60)
idler.send(idler._new_tag() + b" IDLE\r\n")
while not idler.readline().startswith(b"+"):
    pass
exists = queue.Queue()
def watch():
    try:
        while True:
            line = idler.readline()
            if not line or b" OK " in line and not line.startswith(b"*"):
                return
            if line.endswith(b"EXISTS\r\n"):
                exists.put(time.monotonic())
    except OSError:
        return
threading.Thread(target=watch, daemon=True).start()

imap = imaplib.IMAP4("127.0.0.1", int(port))
imap.login(user, password)
lat, floor, polls, poll_time = [], [], 0, 0.0
for i in range(m):
    msg = EmailMessage()
    # A sender each: past 20 new tickets an hour one sender is quarantined
    # (intake.max_new_tickets_per_hour), which is not the path measured.
    msg["From"] = f"Latency Probe <latency.probe.{i + 1}@acme-corp.test>"
    msg["To"] = user
    msg["Subject"] = f"Latency probe {i + 1}"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<latency.{i + 1}.{uuid.uuid4().hex}@acme-corp.test>"
    msg.set_content(f"Hello,\n\nprobe {i + 1} of {m}.\n\nLatency Probe\n")
    want = base + i + 1
    t0 = time.monotonic()
    typ, resp = imap.append("INBOX", None, None, msg.as_bytes())
    if typ != "OK":
        sys.exit(f"APPEND failed: {resp}")
    while True:
        p0 = time.monotonic()
        got = ingested()
        polls += 1
        poll_time += time.monotonic() - p0
        if got >= want:
            break
        if time.monotonic() - t0 > 30:
            sys.exit(f"mail {i + 1} not committed within 30 s (ingested {got}, want {want})")
        time.sleep(0.005)
    lat.append((time.monotonic() - t0) * 1000)
    try:
        floor.append((exists.get(timeout=5) - t0) * 1000)
    except queue.Empty:
        pass
    while not exists.empty():  # one EXISTS per append; drop any extra
        exists.get_nowait()
imap.logout()
try:
    idler.send(b"DONE\r\n" + idler._new_tag() + b" LOGOUT\r\n")
    time.sleep(0.1)
    idler.shutdown()
except Exception:
    pass

def pct(values, p):  # nearest rank
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))], 1)
print(json.dumps({"n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99), "max": round(max(lat), 1),
                  "min": round(min(lat), 1), "mean": round(statistics.mean(lat), 1),
                  "exists_n": len(floor), "exists_p50": pct(floor, 50) if floor else None,
                  "exists_p99": pct(floor, 99) if floor else None,
                  "poll_ms": round(poll_time / polls * 1000, 2)}))
PY
)
echo "latency: $lat"
p() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$1'])" "$lat"; }

# 5. Stop (SIGTERM), peak RSS over the whole run.
t0=$(date +%s.%N)
kill -TERM "$daemon"
stop_rc=0
wait "$timepid" || stop_rc=$?
stop_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
timepid= daemon=
rss_kb=$(tail -1 "$work/rss")
echo "stopped in $stop_s s (exit $stop_rc), peak RSS $((rss_kb / 1024)) MB"

# Sanity: outcomes in the store, and anything the daemon logged above info.
python3 - "$work/m.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
outcomes = dict(db.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))
outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
reasons = dict(db.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
print(f"store: {outcomes}, outbox rows {outbox}, quarantined by reason {reasons}")
PY
warns=$(grep -cE ' (WARN|ERROR) ' "$work/daemon.log" || true)
echo "daemon log: $(wc -l < "$work/daemon.log") lines, $warns WARN/ERROR"
grep -E ' (WARN|ERROR) ' "$work/daemon.log" | head -5 || true

echo
echo "== bench/imap.sh N=$N =="
echo "ingest:            $rate messages/s ($drain_s s from start to drained; $steady messages/s after the first commit at $first_s s)"
echo "raw fetch ceiling: $raw mails/s (median of $RAW_RUNS)"
echo "ingest / raw:      $(python3 -c "print(round(100 * $rate / $raw, 1))") %"
echo "append->commit:    p50 $(p p50) ms, p99 $(p p99) ms, max $(p max) ms ($M mails, one store poll takes $(p poll_ms) ms)"
echo "append->EXISTS:    p50 $(p exists_p50) ms, p99 $(p exists_p99) ms (bare IDLE client: the server's own notify delay)"
echo "peak RSS:          $((hwm_kb / 1024)) MB drained, $((rss_kb / 1024)) MB whole run"
