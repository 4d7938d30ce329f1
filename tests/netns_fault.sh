#!/usr/bin/env bash
# Multi-host fault test: five shoal nodes, each in its own network
# namespace, joined by veth pairs to a bridge that lives in a namespace of
# its own (the host's network is not touched; addresses 10.231.0.0/24 exist
# only inside these namespaces). A client in a sixth namespace writes for
# about 60 s at QUORUM while nodes are killed with SIGKILL and restarted,
# cut off from the others, and slowed with tc netem (delay and loss).
# Then everything heals and the script checks:
#   * every acknowledged write is readable at ALL with its value;
#   * all replicas converge: every node is up and normal everywhere, no
#     hints are pending, and every node's digest-tree root is equal (N=5,
#     so every node holds every key);
#   * no node process crashed (only the ones the script killed died).
# It prints a summary (ops, acknowledged, lost, time to converge) and exits
# non-zero if any check fails. Needs root (network namespaces); skipped
# otherwise with exit status 0.
#
#   tests/netns_fault.sh            # builds target/debug/shoal first
#   SHOAL=path/to/shoal DURATION=60 tests/netns_fault.sh
set -euo pipefail
cd "$(dirname "$0")/.."

NS=shoalft
NET=10.231.0
PORT=7101
DURATION=${DURATION:-60}
MAX_OPS=${MAX_OPS:-5000}

if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    echo "SKIP: the multi-host fault test needs root, ip and tc (network namespaces, netem)"
    exit 0
fi
if ! ip netns add "$NS-probe" 2>/dev/null; then
    echo "SKIP: cannot create network namespaces here"
    exit 0
fi
ip netns del "$NS-probe"

if [[ -z ${SHOAL:-} ]]; then
    cargo build --locked --quiet --bin shoal
    SHOAL=$PWD/target/debug/shoal
fi
WORK=$(mktemp -d -t shoal-netns-XXXXXX)
declare -A PID

cleanup() {
    for ns in c 1 2 3 4 5; do ip netns pids "$NS-$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in sw c 1 2 3 4 5; do ip netns del "$NS-$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; ip netns exec "$NS-$ns" "$@"; }
addr() { echo "$NET.$1:$PORT"; }
client() { in_ns c "$SHOAL" "$@" --cluster-dir "$WORK/cluster"; }

# The switch: a bridge in its own namespace.
ip netns add "$NS-sw"
ip -n "$NS-sw" link set lo up
ip -n "$NS-sw" link add br0 type bridge
ip -n "$NS-sw" link set br0 up
# Nodes 1-5 and the client (host number 100), each on one veth pair.
attach() {
    local ns=$1 host=$2
    ip netns add "$NS-$ns"
    ip -n "$NS-$ns" link set lo up
    ip link add "sft$ns" netns "$NS-$ns" type veth peer name "sfb$ns" netns "$NS-sw"
    ip -n "$NS-sw" link set "sfb$ns" master br0 up
    ip -n "$NS-$ns" addr add "$NET.$host/24" dev "sft$ns"
    ip -n "$NS-$ns" link set "sft$ns" up
}
for i in 1 2 3 4 5; do attach "$i" "$i"; done
attach c 100

"$SHOAL" cluster init --dir "$WORK/cluster" >/dev/null

start_node() {
    local i=$1 seed=()
    [[ $i -ne 1 ]] && seed=(--seed "$(addr 1)")
    in_ns "$i" "$SHOAL" node start --listen "$(addr "$i")" --data "$WORK/n$i" \
        --cluster-dir "$WORK/cluster" --replication 5 "${seed[@]}" \
        >>"$WORK/n$i.out" 2>>"$WORK/n$i.log" &
    PID[$i]=$!
}

# JSON status of node $1 as the client sees it; empty if unreachable.
status_of() { client status --json --node "$(addr "$1")" 2>/dev/null || true; }

# Whether node $1 sees $2 members up and normal.
members_ready() {
    status_of "$1" | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
ok = [m for m in r["members"] if m["up"] and m["status"].lower() == "normal"]
sys.exit(0 if len(ok) == int(sys.argv[1]) else 1)' "$2"
}

wait_until() {
    local what=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "FAIL: $what within ${limit}s"
            tail -n 20 "$WORK"/n*.log || true
            exit 1
        fi
        sleep 1
    done
}

for i in 1 2 3 4 5; do
    start_node "$i"
    sleep 0.5
done
all_ready() { for i in 1 2 3 4 5; do members_ready "$i" 5 || return 1; done; }
wait_until "five nodes up and normal" 60 all_ready
echo "cluster: 5 nodes in namespaces $NS-1..5, N=5, writes at QUORUM"

# The workload: numbered keys, one client process per write, spread over
# the nodes; a write counts as acknowledged only if the command exits 0.
WRITERS=4
workload() {
    local w=$1 n=0 end=$((SECONDS + DURATION))
    while ((SECONDS < end && n < MAX_OPS / WRITERS)); do
        n=$((n + 1))
        local target=$(((n + w) % 5 + 1))
        if timeout 3 "$SHOAL" put "w$w-k$n" "v$n" --consistency quorum --node "$(addr "$target")" \
            --cluster-dir "$WORK/cluster" >/dev/null 2>&1; then
            echo "w$w-k$n v$n" >>"$WORK/acked.$w"
        fi
    done
    echo "$n" >"$WORK/ops.$w"
}
writers=()
for w in $(seq 1 $WRITERS); do
    in_ns c bash -c "$(declare -f workload addr); NET=$NET PORT=$PORT SHOAL=$SHOAL WORK=$WORK \
        DURATION=$DURATION MAX_OPS=$MAX_OPS WRITERS=$WRITERS workload $w" &
    writers+=($!)
done

# The faults, on a schedule scaled to the duration (times in 60ths).
started=$SECONDS
at() { while ((SECONDS - started < $1 * DURATION / 60)); do sleep 0.2; done; }
killed=0
kill_node() {
    # Every process in the node's namespace: `ip netns exec` may not be the
    # node process itself.
    ip netns pids "$NS-$1" | xargs -r kill -9
    wait "${PID[$1]}" 2>/dev/null || true
    killed=$((killed + 1))
    echo "fault: SIGKILL node $1"
}
restart_node() { start_node "$1"; echo "fault: restart node $1"; }
link() { ip -n "$NS-$1" link set "sft$1" "$2"; echo "fault: node $1 link $2"; }
# netem needs the kernel's sch_netem; without it those faults are skipped.
if in_ns 2 tc qdisc add dev "sft2" root netem delay 1ms 2>/dev/null; then
    in_ns 2 tc qdisc del dev "sft2" root
    netem() {
        if [[ $2 == on ]]; then
            in_ns "$1" tc qdisc add dev "sft$1" root netem delay 40ms 10ms loss 5%
        else
            in_ns "$1" tc qdisc del dev "sft$1" root
        fi
        echo "fault: netem delay 40ms loss 5% $2 on node $1"
    }
else
    echo "note: tc netem is not available in this kernel; latency and loss faults are skipped"
    netem() { :; }
fi
at 8;  kill_node 3
at 14; restart_node 3
at 18; link 5 down
at 22; netem 2 on
at 30; link 5 up
at 34; kill_node 1
at 38; link 4 down
at 40; restart_node 1
at 46; netem 2 off
at 48; link 4 up
at 50; kill_node 4
at 54; restart_node 4
wait "${writers[@]}"
cat "$WORK"/acked.* >"$WORK/acked" 2>/dev/null || true
healed=$SECONDS
echo "healed: links up, no netem, every node running"

# Convergence: all members up and normal everywhere, no hints pending,
# equal digest-tree roots.
converged() {
    local roots=()
    for i in 1 2 3 4 5; do
        local s
        s=$(status_of "$i")
        [[ -n $s ]] || return 1
        local r
        r=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
ok = len([m for m in r["members"] if m["up"] and m["status"].lower() == "normal"]) == 5
hints = sum(h["count"] for h in r["hints"])
root = "%016x:%d" % (r["root"]["digest"], r["root"]["count"])
print(root if ok and hints == 0 else "")' "$s")
        [[ -n $r ]] || return 1
        roots+=("$r")
    done
    [[ $(printf '%s\n' "${roots[@]}" | sort -u | wc -l) -eq 1 ]]
}
wait_until "replicas converged (members, hints, digest roots)" 180 converged
converge_time=$((SECONDS - healed))

# Every acknowledged write is readable at ALL with its value.
lost=0
while read -r key value; do
    got=$(client get "$key" --consistency all --node "$(addr $(((RANDOM % 5) + 1)))" 2>/dev/null | head -n 1 || true)
    if [[ $got != "$value" ]]; then
        lost=$((lost + 1))
        echo "LOST: $key (expected $value, read '${got}')"
    fi
done <"$WORK/acked"

# No process died except the ones killed on purpose (and since restarted).
crashed=0
for i in 1 2 3 4 5; do
    if [[ -z $(ip netns pids "$NS-$i") ]]; then
        crashed=$((crashed + 1))
        echo "CRASHED: node $i"; tail -n 20 "$WORK/n$i.log"
    fi
    if grep -q "panicked" "$WORK/n$i.log"; then
        crashed=$((crashed + 1))
        echo "PANIC: node $i"; grep -A5 panicked "$WORK/n$i.log" | head -n 20
    fi
done

ops=0
for f in "$WORK"/ops.*; do ops=$((ops + $(cat "$f"))); done
acked=$(wc -l <"$WORK/acked")
echo "summary: ops=$ops acknowledged=$acked lost=$lost crashed=$crashed killed=$killed converged_in=${converge_time}s"
if ((lost > 0 || crashed > 0 || acked == 0)); then
    echo "FAIL"
    exit 1
fi
echo "PASS"
