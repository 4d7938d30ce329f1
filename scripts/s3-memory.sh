#!/usr/bin/env bash
# Memory of a node during large S3 uploads: 3 shoal nodes (N=3, release
# build), a warm-up of 64 MiB of 1 MiB objects, then two SIZE_MIB uploads
# (default 1024) through node 1's gateway with boto3 (multipart, 8 MiB
# parts, 4 in flight) while node 1's resident set size is sampled every
# 100 ms. Prints node 1's RSS before and at its peak during each upload:
# the first also grows the node's memtables and caches to their working
# size, the second shows what an upload itself costs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT
SIZE_MIB=${SIZE_MIB:-1024}

python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q boto3
build_shoal
S3_PORT=17480 METRICS_PORT=17490 start_shoal_cluster 17401
read -r ID SECRET <<<"$(s3_key memory memory)"
NO_PROXY='*' python3 - "$ID" "$SECRET" "${PIDS[0]}" "$SIZE_MIB" <<'PY'
import boto3, io, os, sys, threading, time, urllib.request
from boto3.s3.transfer import TransferConfig
key_id, secret, pid, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:17480", aws_access_key_id=key_id,
                  aws_secret_access_key=secret, region_name="us-east-1")
MiB = 1 << 20

def metrics():
    """Node 1's metrics, by name (labels left out)."""
    with urllib.request.urlopen("http://127.0.0.1:17490/metrics", timeout=2) as r:
        return {line.split("{")[0].split(" ")[0]: float(line.split()[-1])
                for line in r.read().decode().splitlines() if line and not line.startswith("#")}

def memtables_mib(sample):
    """Node 1's memtables (active and sealed) in `sample`."""
    return sample.get("shoal_storage_memtable_bytes", 0.0) / MiB

def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

for i in range(64):
    s3.put_object(Bucket="memory", Key=f"warm/{i}", Body=os.urandom(MiB))
time.sleep(2)

class Stream(io.RawIOBase):
    """SIZE_MIB of pseudo-random bytes, made as they are read."""
    def __init__(self, size):
        self.left, self.block = size, os.urandom(MiB)
    def readable(self):
        return True
    def readinto(self, buffer):
        n = min(len(buffer), self.left, MiB)
        buffer[:n] = self.block[:n]
        self.left -= n
        return n

for run in (1, 2):
    before = rss_mib()
    tables_before = memtables_mib(metrics())
    peak, done = [before, tables_before, tables_before], threading.Event()
    def sample():
        while not done.is_set():
            rss, now = rss_mib(), metrics()
            tables = memtables_mib(now)
            if rss > peak[0]:
                peak[0], peak[1] = rss, tables
            peak[2] = max(peak[2], tables)
            if os.environ.get("VERBOSE"):
                print(f"rss {rss:.0f} memtables {tables:.0f} in flight {now.get('shoal_requests_in_flight', 0):.0f}")
            time.sleep(0.1)
    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.monotonic()
    s3.upload_fileobj(io.BufferedReader(Stream(size_mib * MiB), MiB), "memory", f"big{run}.bin",
                      Config=TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                                            max_concurrency=4))
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    size = s3.head_object(Bucket="memory", Key=f"big{run}.bin")["ContentLength"]
    assert size == size_mib * MiB, size
    print(f"upload {run}: {size_mib} MiB in {seconds:.1f} s ({size_mib / seconds:.1f} MiB/s) through node 1; "
          f"node 1 RSS {before:.0f} MiB before, {peak[0]:.0f} MiB at peak, +{peak[0] - before:.0f} MiB; "
          f"memtables {tables_before:.0f} MiB before, {peak[1]:.0f} MiB at the RSS peak, {peak[2]:.0f} MiB at most")
PY
