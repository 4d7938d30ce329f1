# Shared by scripts/compare.sh and scripts/memory.sh (sourced, not run).
# The caller sets ROOT (the repository), WORK (a temporary directory) and
# PIDS (an array of the processes to stop on exit).

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

# Builds shoal in release mode (debug with SHOAL_PROFILE=debug) and sets
# SHOAL to the binary.
build_shoal() {
    if [ "${SHOAL_PROFILE:-release}" = debug ]; then
        cargo build --locked --manifest-path "$ROOT/Cargo.toml" -q
        SHOAL="$ROOT/target/debug/shoal"
    else
        cargo build --release --locked --manifest-path "$ROOT/Cargo.toml" -q
        SHOAL="$ROOT/target/release/shoal"
    fi
}

# Starts 3 shoal node processes on 127.0.0.1 ports PORT..PORT+2 with
# buffered durability, exports SHOAL_NODE and SHOAL_CLUSTER_DIR, and waits
# until the first node sees all 3 up. With HTTP_PORT set, node i also
# serves plain HTTP on 127.0.0.1:HTTP_PORT+i, and with S3_PORT set, plain
# S3 on 127.0.0.1:S3_PORT+i.
start_shoal_cluster() { # PORT
    local port=$1 i up
    for i in 0 1 2; do
        if [ -n "$(ss -Hunl "sport = :$((port + i))" 2>/dev/null)" ]; then
            echo "UDP port $((port + i)) is in use (a node left from an earlier run?)" >&2
            return 1
        fi
    done
    "$SHOAL" cluster init --dir "$WORK/cluster" >/dev/null
    for i in 0 1 2; do
        local seeds=()
        [ "$i" -gt 0 ] && seeds=(--seed "127.0.0.1:$port")
        [ -n "${HTTP_PORT:-}" ] && seeds+=(--http "127.0.0.1:$((HTTP_PORT + i))" --http-plain)
        [ -n "${S3_PORT:-}" ] && seeds+=(--s3 "127.0.0.1:$((S3_PORT + i))" --s3-plain)
        [ -n "${METRICS_PORT:-}" ] && seeds+=(--metrics "127.0.0.1:$((METRICS_PORT + i))")
        [ -n "${STORAGE:-}" ] && seeds+=(--storage "$STORAGE" --set "max_memory_bytes=${MAX_MEMORY_BYTES:-4294967296}")
        RUST_LOG=warn "$SHOAL" node start --data "$WORK/node$i" --listen "127.0.0.1:$((port + i))" \
            --cluster-dir "$WORK/cluster" "${seeds[@]}" --durability buffer >"$WORK/node$i.log" 2>&1 &
        PIDS+=($!)
    done
    export SHOAL_NODE="127.0.0.1:$port" SHOAL_CLUSTER_DIR="$WORK/cluster"
    for _ in $(seq 1 150); do
        up=$("$SHOAL" status --json 2>/dev/null | python3 -c \
            'import json,sys; print(sum(m["up"] for m in json.load(sys.stdin)["members"]))' 2>/dev/null || echo 0)
        [ "$up" = 3 ] && return 0
        sleep 0.2
    done
    echo "the 3 shoal nodes did not see each other within 30 s; logs in $WORK" >&2
    return 1
}

# Makes S3 access key NAME and prints "ID SECRET". With --create-bucket the
# key may make buckets; with a bucket name, that bucket is made and the key
# owns it.
s3_key() { # NAME [--create-bucket | BUCKET]
    local flag=() id secret
    [ "${2:-}" = --create-bucket ] && flag=(--create-bucket)
    read -r id secret < <("$SHOAL" s3 key create "$1" "${flag[@]}" 2>/dev/null |
        awk '/access key id/ {id=$NF} /secret access key/ {s=$NF} END {print id, s}')
    if [ -n "${2:-}" ] && [ "$2" != --create-bucket ]; then
        "$SHOAL" s3 bucket create "$2" >/dev/null
        "$SHOAL" s3 allow "$id" "$2" --read --write --owner >/dev/null
    fi
    echo "$id $secret"
}
