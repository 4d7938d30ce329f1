#!/usr/bin/env bash
# Small-object capacity of the S3 gateway, past one client process: 3
# shoal nodes on loopback (N=3, release build) and CLIENTS (default 3)
# boto3 processes of 8 threads each, every one through node 1's gateway,
# PUT then GET of 4 KiB objects for PHASE_SECONDS (default 15) each. One boto3
# process tops out near a core of its own (see BENCH.md), so the
# single-client probe (scripts/s3-bench.sh) measures the client there;
# this prints the sum over the processes, each process's figure, and the
# nodes' CPU. The client processes share the machine's cores with the
# nodes: on 2 cores, more of them leave the nodes less.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT
CLIENTS=${CLIENTS:-3}
SECONDS_PER_PHASE=${PHASE_SECONDS:-15}

python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q boto3
build_shoal
S3_PORT=17580 start_shoal_cluster 17501
read -r ID SECRET <<<"$(s3_key small small)"
NO_PROXY='*' python3 - "$ID" "$SECRET" "$CLIENTS" "$SECONDS_PER_PHASE" "${PIDS[@]}" <<'PY'
import multiprocessing as mp, os, sys, threading, time
key_id, secret, clients, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
nodes = [int(p) for p in sys.argv[5:]]
THREADS, SIZE, KEYS = 8, 4096, 2000
TICK = os.sysconf("SC_CLK_TCK")

def node_cpu():
    total = 0
    for pid in nodes:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK

def client(n, op, start, results, written):
    import boto3
    from botocore.config import Config
    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:17580", region_name="us-east-1",
                      aws_access_key_id=key_id, aws_secret_access_key=secret,
                      config=Config(max_pool_connections=THREADS, s3={"addressing_style": "path"},
                                    retries={"mode": "standard", "max_attempts": 1}))
    done, errors, lock = [0], [0], threading.Lock()
    counts = [0] * THREADS
    def worker(t):
        i = 0
        # GETs cycle over the keys this thread's PUTs wrote.
        keys = KEYS if op == "PUT" else max(1, min(KEYS, written[t]))
        while time.time() < start + seconds:
            key = f"c{n}/t{t}/{i % keys:05d}"
            try:
                if op == "PUT":
                    s3.put_object(Bucket="small", Key=key, Body=os.urandom(SIZE))
                else:
                    got = s3.get_object(Bucket="small", Key=key)["Body"].read()
                    assert len(got) == SIZE, len(got)
            except Exception as e:
                with lock:
                    errors[0] += 1
                if errors[0] < 3:
                    print(f"  client {n}: {e!r}", flush=True)
                return
            i += 1
            counts[t] = i
            with lock:
                done[0] += 1
    # Ready before the common start.
    s3.list_buckets()
    time.sleep(max(0, start - time.time()))
    c0 = time.process_time()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads: t.start()
    for t in threads: t.join()
    results.put((n, done[0], errors[0], time.process_time() - c0, counts))

written = {n: [0] * THREADS for n in range(clients)}
for op in ("PUT", "GET"):
    results = mp.Queue()
    start = time.time() + 3
    procs = [mp.Process(target=client, args=(n, op, start, results, written[n])) for n in range(clients)]
    for p in procs: p.start()
    time.sleep(max(0, start - time.time()))
    c0 = node_cpu()
    got = [results.get() for _ in procs]
    cpu = node_cpu() - c0
    for p in procs: p.join()
    if op == "PUT":
        written = {n: counts for n, _, _, _, counts in got}
    total = sum(g[1] for g in got)
    errors = sum(g[2] for g in got)
    each = ", ".join(f"{g[1] / seconds:.0f}" for g in sorted(got))
    client_cpu = sum(g[3] for g in got) / seconds * 100
    print(f"{op} 4 KiB, {clients} clients x {THREADS} threads: {total / seconds:.0f} obj/s "
          f"(each: {each}), errors {errors}, nodes' CPU {cpu / seconds * 100:.0f}% of a core, "
          f"clients' CPU {client_cpu:.0f}%", flush=True)
    if errors:
        sys.exit(1)
PY
