"""shoal's HTTP API driven by Python `requests`: a client not written in Rust.

Usage: python3 tests/http_client.py BASE_URL CLIENT_DIR
CLIENT_DIR holds ca.pem, cert.pem and key.pem (a readwrite client).
Exits non-zero, with the failed check, if anything is not as documented.
"""

import base64
import sys

import requests

base, certs = sys.argv[1], sys.argv[2]
session = requests.Session()
# Only what this script says: no CA bundle or proxy from the environment.
session.trust_env = False
session.verify = f"{certs}/ca.pem"
session.cert = (f"{certs}/cert.pem", f"{certs}/key.pem")
TIMEOUT = 10


def check(condition, what):
    if not condition:
        sys.exit(f"failed: {what}")


# A write, then a read of the value as the body, with its context.
r = session.put(f"{base}/v1/kv/py%2Fkey", data=b"\x00binary\xff", timeout=TIMEOUT)
check(r.status_code == 200, f"put: {r.status_code} {r.text}")
context = r.headers["X-Shoal-Context"]
check(r.json()["context"] == context, "put answers with the new context")
r = session.get(f"{base}/v1/kv/py%2Fkey", timeout=TIMEOUT)
check(r.status_code == 200 and r.content == b"\x00binary\xff", f"get: {r.status_code} {r.content!r}")

# A concurrent blind write makes siblings: 300, and JSON on request.
session.put(f"{base}/v1/kv/py%2Fkey", data=b"other", timeout=TIMEOUT).raise_for_status()
r = session.get(f"{base}/v1/kv/py%2Fkey", timeout=TIMEOUT)
check(r.status_code == 300, f"siblings: {r.status_code}")
check(r.headers["Content-Type"].startswith("multipart/mixed; boundary="), "multipart siblings")
r = session.get(f"{base}/v1/kv/py%2Fkey", headers={"Accept": "application/json"}, timeout=TIMEOUT)
values = sorted(base64.b64decode(v["value_base64"]) for v in r.json()["values"])
check(values == [b"\x00binary\xff", b"other"], f"json siblings: {values}")

# Writing with the read's context replaces both.
context = r.json()["context"]
r = session.put(
    f"{base}/v1/kv/py%2Fkey", data=b"resolved", headers={"X-Shoal-Context": context}, timeout=TIMEOUT
)
check(r.status_code == 200, f"resolving put: {r.status_code}")
r = session.get(f"{base}/v1/kv/py%2Fkey", timeout=TIMEOUT)
check(r.status_code == 200 and r.content == b"resolved", f"resolved: {r.status_code} {r.content!r}")

# Listing by prefix, page by page.
for i in range(5):
    session.put(f"{base}/v1/kv/pylist{i}", data=str(i), timeout=TIMEOUT).raise_for_status()
keys, cursor = [], None
while True:
    params = {"prefix": "pylist", "limit": 2, "values": "true"}
    if cursor:
        params["cursor"] = cursor
    page = session.get(f"{base}/v1/kv", params=params, timeout=TIMEOUT).json()
    keys += [(k["key"], base64.b64decode(k["values"][0]["value_base64"])) for k in page["keys"]]
    cursor = page["cursor"]
    if cursor is None:
        break
check(keys == [(f"pylist{i}", str(i).encode()) for i in range(5)], f"listing: {keys}")

# Delete with the context; then 404.
context = session.get(f"{base}/v1/kv/py%2Fkey", timeout=TIMEOUT).headers["X-Shoal-Context"]
r = session.delete(f"{base}/v1/kv/py%2Fkey", headers={"X-Shoal-Context": context}, timeout=TIMEOUT)
check(r.status_code == 200, f"delete: {r.status_code}")
r = session.get(f"{base}/v1/kv/py%2Fkey", timeout=TIMEOUT)
check(r.status_code == 404 and r.json()["error"]["code"] == "not_found", f"after delete: {r.status_code}")

# Errors are JSON with a stable code.
r = session.get(f"{base}/v1/kv/x", params={"consistency": "most"}, timeout=TIMEOUT)
check(r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter", f"bad parameter: {r.text}")
anonymous = requests.Session()
anonymous.trust_env = False
r = anonymous.get(f"{base}/v1/kv/x", verify=f"{certs}/ca.pem", timeout=TIMEOUT)
check(r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", f"no credentials: {r.text}")
print("python requests: ok")
