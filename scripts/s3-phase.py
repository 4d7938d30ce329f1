#!/usr/bin/env python3
"""Runs one PUT phase of the S3 throughput probe (../shared/s3-bench.py),
with its own functions and settings, and prints the nodes' CPU time per
object: a shorter, repeatable measure of one figure of the probe.

usage: S3BENCH=PATH ONLY=PUT4K|PUT1M|PUT64M s3-phase.py ENDPOINT BUCKET ACCESS_KEY SECRET_KEY [SERVER_PID ...]
"""
import importlib.util
import os

spec = importlib.util.spec_from_file_location("s3bench", os.environ["S3BENCH"])
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)  # reads its arguments from sys.argv

PHASES = {
    "PUT4K": lambda: probe.timed_put("k4", probe.BODY_4K, [[] for _ in range(probe.THREADS)]),
    "PUT1M": lambda: probe.timed_put("m1", probe.BODY_1M, [[] for _ in range(probe.THREADS)]),
    "PUT64M": lambda: probe.fixed_put("m64", probe.BODY_64M, 16),
}
NAMES = {"PUT4K": "PUT 4KiB", "PUT1M": "PUT 1MiB", "PUT64M": "PUT 64MiB"}

only = os.environ.get("ONLY", "")
if only not in PHASES:
    raise SystemExit(f"ONLY must be one of {', '.join(PHASES)}, not {only!r}")
for i in range(16):  # warm-up (connections), not measured, as the probe does
    probe.put(f"warmup/{i}", probe.BODY_4K)
result = probe.run_phase(NAMES[only], PHASES[only]())
if result["ops"] and probe.SERVER_PIDS:
    per_object = result["server_cpu_pct"] / 100 * result["wall_s"] / result["ops"]
    print(f"node CPU per object: {1e3 * per_object:.2f} ms (all nodes)")
