#!/usr/bin/env bash
# SMTP relay throughput, Waypost side by side with Postfix.
#
#   smtp-source -s SESSIONS -m MESSAGES -l 1024  ->  MTA  ->  smtp-sink
#
# once through Waypost and once through Postfix configured as a plain relay
# (main.cf as in /work/shared/PEERS.md, relaying everything to the sink), in
# turns on the same machine: Waypost, Postfix, Waypost, Postfix... Every run
# starts its MTA from a fresh queue, on loopback and non-standard ports, and
# stops it afterwards.
# A run is complete when the sink has counted every message and the MTA's
# queue is empty. Printed per run: seconds from the first connection to the
# last message at the sink, messages/s end to end, and the MTA's CPU seconds
# per 1,000 messages; then the medians and the ratio Waypost/Postfix.
#
# Run as root from the repository root:
#
#   bash bench/smtp_relay.sh [--rounds 2] [--messages 5000] [--sessions 20]
#                            [--size 1024] [--dir DIR] [--keep]
#                            [--waypost-port 12525] [--postfix-port 12527]
#                            [--sink-port 12526] [--only waypost|postfix]
#                            [--hold SECONDS] [--log-level warning]
#                            [--observe default|compare]
#
# --observe compare runs Waypost twice a round, with message tracking and the
# metrics endpoint (scraped every second, as Prometheus would) on
# ("Waypost-observed") and off ("Waypost-plain"), and prints their CPU ratio.
# The default runs Waypost on its defaults (tracking on, metrics off).
# NOSCRAPE=1 in the environment leaves the scraping out.
#
# "other CPU" is what the machine spent on anything but the MTA, smtp-source
# and smtp-sink during a run (other users' work, interrupts): a run with much
# of it was disturbed. Waypost logs at --log-level (default warning: no
# per-message events); its log goes to a file in the work directory.
#
# --hold pauses each Waypost run before smtp-source starts (the pid is printed)
# so that a profiler can be attached, e.g. `py-spy record --pid PID`.

set -euo pipefail

ROUNDS=2
MESSAGES=5000
SESSIONS=20
SIZE=1024
WAYPOST_PORT=12525
POSTFIX_PORT=12527
SINK_PORT=12526
WORK=""
KEEP=0
ONLY=""
HOLD=0
LOG_LEVEL=warning
OBSERVE=default
METRICS_PORT=12529
SCRAPE_PID=""
TIMEOUT_MIN=120

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --messages) MESSAGES=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --waypost-port) WAYPOST_PORT=$2; shift 2 ;;
        --postfix-port) POSTFIX_PORT=$2; shift 2 ;;
        --sink-port) SINK_PORT=$2; shift 2 ;;
        --dir) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --hold) HOLD=$2; shift 2 ;;
        --log-level) LOG_LEVEL=$2; shift 2 ;;
        --observe) OBSERVE=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

die() { echo "smtp_relay.sh: $*" >&2; exit 1; }

case "$ONLY" in ""|waypost|postfix) ;; *) die "--only takes waypost or postfix" ;; esac
case "$OBSERVE" in default|compare) ;; *) die "--observe takes default or compare" ;; esac

[ "$(id -u)" = 0 ] || die "run as root (Postfix is started and stopped by this script)"
REPO=$(pwd)
PY="$REPO/.venv/bin/python"
WAYPOST="$REPO/.venv/bin/waypost"
HELPER="$REPO/bench/smtp_relay_helper.py"
[ -x "$WAYPOST" ] && [ -f "$HELPER" ] || die "run from the repository root, with .venv installed"
for tool in smtp-source smtp-sink postfix postconf; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install postfix; see PEERS.md)"
done
for port in "$WAYPOST_PORT" "$POSTFIX_PORT" "$SINK_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is in use on 127.0.0.1; choose others with --*-port"
    fi
done
# A run that takes longer than this has failed (lost or stuck messages).
TIMEOUT=$(( MESSAGES / 20 > TIMEOUT_MIN ? MESSAGES / 20 : TIMEOUT_MIN ))

if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /var/tmp/waypost-smtp-relay.XXXXXX)
else
    mkdir -p "$WORK"
fi
chmod 755 "$WORK"   # Postfix's unprivileged daemons find their queue under it
RESULTS="$WORK/results.tsv"
: > "$RESULTS"

SINK_PID=""
WATCH_PID=""
SOURCE_PID=""
WAYPOST_PID=""
PF_CONF=""
PF_MASTER=""

alive() {  # a process that exists and is not a zombie
    local state
    state=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

wait_gone() {  # PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

stop_pid() {  # PID: SIGTERM, then SIGKILL after 10 s
    [ -n "$1" ] || return 0
    if alive "$1"; then
        kill -TERM "$1" 2>/dev/null || true
        wait_gone "$1" 10 || kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

stop_postfix() {
    [ -n "$PF_CONF" ] || return 0
    if [ -n "$PF_MASTER" ] && alive "$PF_MASTER"; then
        postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
        if ! wait_gone "$PF_MASTER" 15; then
            echo "smtp_relay.sh: Postfix master $PF_MASTER did not stop; killing it and its children" >&2
            postfix -c "$PF_CONF" abort >/dev/null 2>&1 || true
            wait_gone "$PF_MASTER" 5 || kill -KILL "$PF_MASTER" 2>/dev/null || true
        fi
    fi
    PF_MASTER=""
    PF_CONF=""
}

stop_sink() {
    stop_pid "$SINK_PID"; SINK_PID=""
    # The watcher ends by itself at the end of the sink's output.
    [ -z "$WATCH_PID" ] || wait_gone "$WATCH_PID" 5 || true
    stop_pid "$WATCH_PID"; WATCH_PID=""
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$SOURCE_PID"
    stop_pid "$SCRAPE_PID"
    stop_pid "$WAYPOST_PID"
    stop_postfix
    stop_sink
    if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_sink() {  # RUNDIR
    local fifo="$1/sink.fifo"
    mkfifo "$fifo"
    "$PY" "$HELPER" watch-sink --count "$MESSAGES" --out "$1/sink.done" < "$fifo" &
    WATCH_PID=$!
    smtp-sink -u postfix -c "127.0.0.1:$SINK_PORT" 1024 > "$fifo" 2> "$1/sink.err" &
    SINK_PID=$!
    "$PY" "$HELPER" wait-port "$SINK_PORT" --timeout 10 || die "smtp-sink did not start"
}

start_waypost() {  # RUNDIR OBSERVE
    "$PY" "$HELPER" waypost-config --data-dir "$1/waypost-data" --port "$WAYPOST_PORT" \
        --sink-port "$SINK_PORT" --log-level "$LOG_LEVEL" --out "$1/waypost.toml" \
        --observe "${2:-default}" --metrics-port "$METRICS_PORT"
    "$WAYPOST" config check "$1/waypost.toml" >/dev/null
    "$WAYPOST" serve -c "$1/waypost.toml" > "$1/waypost.log" 2>&1 &
    WAYPOST_PID=$!
    "$PY" "$HELPER" wait-port "$WAYPOST_PORT" --timeout 30 \
        || { cat "$1/waypost.log" >&2; die "Waypost did not start"; }
}

start_postfix() {  # RUNDIR
    local dir=$1
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
    chown postfix "$dir/data"
    cp /etc/postfix/master.cf.proto "$dir/etc/master.cf"
    # main.cf as in PEERS.md, plus a private queue, data directory and log so
    # that the run touches nothing of the system's Postfix.
    cat > "$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
myhostname = mta-test.localdomain
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = $dir/postfix.log
in_flow_delay = 0
queue_directory = $dir/spool
data_directory = $dir/data
EOF
    postconf -c "$dir/etc" -F '*/*/chroot = n'
    postconf -c "$dir/etc" -M# smtp/inet
    postconf -c "$dir/etc" -M "127.0.0.1:$POSTFIX_PORT/inet = 127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd"
    PF_CONF="$dir/etc"
    postfix -c "$PF_CONF" check
    postfix -c "$PF_CONF" start >/dev/null 2>&1 || { cat "$dir/postfix.log" >&2; die "Postfix did not start"; }
    "$PY" "$HELPER" wait-port "$POSTFIX_PORT" --timeout 30 || die "Postfix does not listen"
    PF_MASTER=$(tr -d ' \n' < "$dir/spool/pid/master.pid")
    alive "$PF_MASTER" || die "no Postfix master"
}

waypost_queue_empty() {  # RUNDIR
    "$WAYPOST" queue list -c "$1/waypost.toml" --limit 1 2>/dev/null | grep -qx -- '-- 0 recipients'
}

postfix_queue_empty() {  # RUNDIR
    local q="$1/spool"
    [ -z "$(find "$q/incoming" "$q/active" "$q/deferred" "$q/maildrop" "$q/hold" -type f -print -quit)" ]
}

run_once() {  # ROUND MTA
    local round=$1 mta=$2 dir pid tree="" port cpu0 cpu1 mach0 mach1 sink0 sink1
    local t0 tsrc tsink srccpu rc deadline
    dir="$WORK/round$round-$mta"
    mkdir -p "$dir"
    start_sink "$dir"
    if [ "$mta" = Waypost-observed ]; then
        start_waypost "$dir" on; pid=$WAYPOST_PID
        # Scraped every second during the run, as a Prometheus server would.
        ( while [ -z "${NOSCRAPE:-}" ]; do curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"; sleep 1; done ) &
        SCRAPE_PID=$!
    elif [ "$mta" = Waypost-plain ]; then
        start_waypost "$dir" off; pid=$WAYPOST_PID
    elif [ "$mta" = Waypost ]; then
        start_waypost "$dir"; pid=$WAYPOST_PID
    else
        start_postfix "$dir"; pid=$PF_MASTER; tree=--tree
    fi
    sleep 1   # let start-up work settle before the CPU counters are read
    if [ "$mta" != Postfix ] && [ "$HOLD" != 0 ]; then
        echo "Waypost pid $pid: starting the load in $HOLD s" >&2
        sleep "$HOLD"
    fi
    port=$WAYPOST_PORT
    [ "$mta" != Postfix ] || port=$POSTFIX_PORT
    mach0=$("$PY" "$HELPER" machine-cpu)
    sink0=$("$PY" "$HELPER" cpu "$SINK_PID")
    cpu0=$("$PY" "$HELPER" cpu "$pid" $tree)
    "$PY" "$HELPER" run-source --out "$dir/source.times" -- \
        smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -f sender@source.example -t rcpt@sink.example "127.0.0.1:$port" \
        > "$dir/source.out" 2>&1 &
    SOURCE_PID=$!
    rc=0; wait "$SOURCE_PID" || rc=$?
    SOURCE_PID=""
    [ "$rc" = 0 ] || { cat "$dir/source.out" >&2; die "$mta: smtp-source failed (exit $rc)"; }
    read -r t0 tsrc srccpu < "$dir/source.times"
    deadline=$(( $(date +%s) + TIMEOUT ))
    until [ -f "$dir/sink.done" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$mta: the sink did not get $MESSAGES messages in ${TIMEOUT}s"
        sleep 0.02
    done
    if [ "$mta" != Postfix ]; then
        until waypost_queue_empty "$dir"; do
            [ "$(date +%s)" -lt "$deadline" ] || die "$mta: the queue is not empty after ${TIMEOUT}s"
            sleep 0.1
        done
    else
        until postfix_queue_empty "$dir"; do
            [ "$(date +%s)" -lt "$deadline" ] || die "$mta: the queue is not empty after ${TIMEOUT}s"
            sleep 0.1
        done
    fi
    cpu1=$("$PY" "$HELPER" cpu "$pid" $tree)
    sink1=$("$PY" "$HELPER" cpu "$SINK_PID")
    mach1=$("$PY" "$HELPER" machine-cpu)
    tsink=$(cut -d' ' -f1 "$dir/sink.done")
    if [ "$mta" != Postfix ]; then
        stop_pid "$SCRAPE_PID"; SCRAPE_PID=""
        stop_pid "$WAYPOST_PID"; WAYPOST_PID=""
        if grep -qE '^[^ ]+ (WARNING|ERROR|CRITICAL) ' "$dir/waypost.log"; then
            echo "  (Waypost logged warnings or errors: $dir/waypost.log)" >&2
            KEEP=1
        fi
    else
        local sent
        sent=$(grep -c 'status=sent' "$dir/postfix.log" || true)
        stop_postfix
        [ "$sent" = "$MESSAGES" ] || echo "  (Postfix log: $sent status=sent, expected $MESSAGES)" >&2
    fi
    stop_sink
    local total
    total=$(cat "$dir/sink.done.final" 2>/dev/null || echo '?')
    [ "$total" = "$MESSAGES" ] || echo "  ($mta: the sink received $total messages, expected $MESSAGES)" >&2
    "$PY" "$HELPER" record --results "$RESULTS" --round "$round" --mta "$mta" \
        --messages "$MESSAGES" --t0 "$t0" --t-source "$tsrc" --t-sink "$tsink" \
        --cpu-before "$cpu0" --cpu-after "$cpu1" --machine-before "$mach0" \
        --machine-after "$mach1" --tools-cpu "$("$PY" -c "print($srccpu + $sink1 - $sink0)")"
}

echo "smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE -> MTA -> smtp-sink; $ROUNDS round(s); $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "Postfix $(postconf -dh mail_version); $("$WAYPOST" --version 2>/dev/null || echo Waypost); $("$PY" -V)"
for ((r = 1; r <= ROUNDS; r++)); do
    if [ "$ONLY" != postfix ]; then
        if [ "$OBSERVE" = compare ]; then
            # Alternating which goes first, so that drift within a round favours neither.
            if (( r % 2 )); then
                run_once "$r" Waypost-plain; run_once "$r" Waypost-observed
            else
                run_once "$r" Waypost-observed; run_once "$r" Waypost-plain
            fi
        else
            run_once "$r" Waypost
        fi
    fi
    [ "$ONLY" = waypost ] || run_once "$r" Postfix
done
"$PY" "$HELPER" summary "$RESULTS"
