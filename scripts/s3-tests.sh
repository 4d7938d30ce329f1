#!/usr/bin/env bash
# Runs ceph/s3-tests (s3tests/functional/test_s3.py, unmodified, from
# ../shared/s3-tests or $S3TESTS) against 3 shoal nodes on loopback (N=3),
# through node 1's S3 gateway. Installs the suite's Python dependencies
# from PyPI when missing.
#
#   scripts/s3-tests.sh              the must-pass list (tests/s3/must-pass.txt);
#                                    fails if any of them fails
#   scripts/s3-tests.sh --all        the whole file; writes the passing tests
#                                    to $OUT (default target/s3-tests-passed.txt)
#
# SHOAL_PROFILE=debug uses a debug build (as CI does) instead of release.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
trap cleanup EXIT
if [ -z "${S3TESTS:-}" ]; then
    for candidate in "$ROOT/../shared/s3-tests" /work/shared/s3-tests; do
        [ -f "$candidate/s3tests/functional/test_s3.py" ] && S3TESTS=$candidate && break
    done
fi
if [ ! -f "${S3TESTS:-}/s3tests/functional/test_s3.py" ]; then
    echo "ceph/s3-tests not found: set S3TESTS to its directory (../shared/s3-tests)" >&2
    exit 1
fi
MODE=${1:-must-pass}

python3 -c 'import pytest, munch, gevent, isodate, pytz, lxml, yaml, httplib2, boto3' 2>/dev/null ||
    python3 -m pip install -q pytest munch gevent isodate pytz lxml PyYAML httplib2 boto3 requests
build_shoal
S3_PORT=17280 start_shoal_cluster 17201

# Three access keys (the suite's main, alt and tenant users), each allowed
# to make buckets.
read -r MAIN_ID MAIN_SECRET <<<"$(s3_key main --create-bucket)"
read -r ALT_ID ALT_SECRET <<<"$(s3_key alt --create-bucket)"
read -r TENANT_ID TENANT_SECRET <<<"$(s3_key tenant --create-bucket)"
cat >"$WORK/s3tests.conf" <<CONF
[DEFAULT]
host = 127.0.0.1
port = 17280
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = shoal-{random}-
iam name prefix = s3-tests-
iam path prefix = /s3-tests/

[s3 main]
display_name = $MAIN_ID
user_id = $MAIN_ID
email = main@example.com
api_name = default
access_key = $MAIN_ID
secret_key = $MAIN_SECRET

[s3 alt]
display_name = $ALT_ID
user_id = $ALT_ID
email = alt@example.com
access_key = $ALT_ID
secret_key = $ALT_SECRET

[s3 tenant]
display_name = $TENANT_ID
user_id = $TENANT_ID
access_key = $TENANT_ID
secret_key = $TENANT_SECRET
email = tenant@example.com
tenant = testx

[iam]
email = iam@example.com
user_id = $MAIN_ID
access_key = $MAIN_ID
secret_key = $MAIN_SECRET
display_name = $MAIN_ID

[iam root]
access_key = $MAIN_ID
secret_key = $MAIN_SECRET
user_id = $MAIN_ID
email = root@example.com

[iam alt root]
access_key = $ALT_ID
secret_key = $ALT_SECRET
user_id = $ALT_ID
email = altroot@example.com
CONF

cd "$S3TESTS"
export S3TEST_CONF="$WORK/s3tests.conf" AWS_CA_BUNDLE= REQUESTS_CA_BUNDLE= NO_PROXY='*' no_proxy='*'
case "$MODE" in
--all)
    OUT=${OUT:-$ROOT/target/s3-tests-passed.txt}
    python3 -m pytest s3tests/functional/test_s3.py -q -p no:cacheprovider -rA \
        -o junit_family=xunit1 --junitxml="$WORK/report.xml" "${@:2}" >"$WORK/pytest.log" 2>&1 || true
    cp "$WORK/pytest.log" "${OUT%.txt}.log"
    tail -3 "$WORK/pytest.log"
    python3 - "$WORK/report.xml" "$OUT" <<'PY'
import re, sys, xml.etree.ElementTree as ET
cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
names = sorted({c.get("name") for c in cases})
passed = sorted({c.get("name") for c in cases if not any(x.tag in ("failure", "error", "skipped") for x in c)})
open(sys.argv[2], "w").write("".join(n + "\n" for n in passed))
print(f"{len(passed)} of {len(names)} passed; names in {sys.argv[2]}")
groups = {
    "listing": r"test_bucket_list",
    "objects": r"test_object_",
    "multipart": r"test_multipart_|test_abort_multipart_upload|test_list_multipart_upload",
    "buckets": r"test_bucket_create|test_bucket_delete|test_bucket_head",
    "ranged": r"test_ranged_",
    "conditionals": r"test_get_object_if|test_put_object_if",
    "atomic": r"test_atomic_",
}
for group, pattern in groups.items():
    members = [n for n in names if re.match(pattern, n)]
    ok = [n for n in members if n in passed]
    print(f"  {group}: {len(ok)} of {len(members)}")
PY
    ;;
*)
    LIST="$ROOT/tests/s3/must-pass.txt"
    mapfile -t TESTS < <(grep -v '^#' "$LIST" | grep . | sed 's|^|s3tests/functional/test_s3.py::|')
    echo "running ${#TESTS[@]} tests of $LIST"
    python3 -m pytest -q -p no:cacheprovider "${TESTS[@]}"
    ;;
esac
