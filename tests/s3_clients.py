"""Real S3 clients against shoal's gateway: boto3, the aws CLI, rclone,
s3cmd and the minio client (each skipped when not installed, except in CI,
which installs them). Run by tests/net_s3.rs:

    s3_clients.py ENDPOINT OWNER_ID OWNER_SECRET READER_ID READER_SECRET \
        STRANGER_ID STRANGER_SECRET PHASE

PHASE `clients` exercises every supported operation and the refusals;
`kept` checks that the object left for the garbage sweep reads back intact;
`https-virtual` (with SHOAL_CA, the cluster CA) checks HTTPS and
virtual-host-style buckets.
"""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile

import boto3
import botocore
import requests
from botocore.config import Config

(endpoint, owner_id, owner_secret, reader_id, reader_secret, stranger_id,
 stranger_secret, phase) = sys.argv[1:9]


def client(key_id, secret, retries=None, **extra):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key_id,
        aws_secret_access_key=secret, region_name="us-east-1",
        config=Config(retries=retries or {"max_attempts": 3}, **extra))


owner = client(owner_id, owner_secret)
reader = client(reader_id, reader_secret)
stranger = client(stranger_id, stranger_secret)
MiB = 1 << 20


def data(seed, size):
    return random.Random(seed).randbytes(size)


def refused(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as error:
        got = error.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {error}"
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def objects():
    owner.create_bucket(Bucket="photos")
    owner.create_bucket(Bucket="photos")  # again: as S3 in us-east-1, fine
    refused("BucketAlreadyExists", stranger.create_bucket, Bucket="photos")
    refused("InvalidBucketName", owner.create_bucket, Bucket="Bad_Name")
    names = [b["Name"] for b in owner.list_buckets()["Buckets"]]
    assert "photos" in names and "shared" in names, names
    assert owner.get_bucket_location(Bucket="photos")["LocationConstraint"] in (None, "")
    owner.head_bucket(Bucket="photos")

    # Small (kept in the record) and large (blocks of 1 MiB) objects.
    small, large = b"hello, shoal", data(1, 3 * MiB + 12345)
    owner.put_object(Bucket="photos", Key="small.txt", Body=small, ContentType="text/plain",
                     Metadata={"colour": "blue"}, CacheControl="max-age=60")
    put = owner.put_object(Bucket="photos", Key="dir/large.bin", Body=large)
    assert put["ETag"] == f'"{hashlib.md5(large).hexdigest()}"', put["ETag"]
    got = owner.get_object(Bucket="photos", Key="small.txt")
    assert got["Body"].read() == small
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"colour": "blue"}
    assert got["CacheControl"] == "max-age=60"
    assert owner.get_object(Bucket="photos", Key="dir/large.bin")["Body"].read() == large
    head = owner.head_object(Bucket="photos", Key="dir/large.bin")
    assert head["ContentLength"] == len(large)
    refused("404", owner.head_object, Bucket="photos", Key="absent")
    refused("NoSuchKey", owner.get_object, Bucket="photos", Key="absent")
    refused("NoSuchBucket", owner.get_object, Bucket="no-such-bucket", Key="x")

    # Ranges: across a block boundary, a suffix, the first byte, past the end.
    for spec, want in [(f"bytes={MiB - 5}-{MiB + 5}", large[MiB - 5:MiB + 6]),
                       ("bytes=-10", large[-10:]), ("bytes=0-0", large[:1]),
                       (f"bytes={2 * MiB}-", large[2 * MiB:])]:
        part = owner.get_object(Bucket="photos", Key="dir/large.bin", Range=spec)
        assert part["Body"].read() == want, spec
        assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    refused("InvalidRange", owner.get_object, Bucket="photos", Key="dir/large.bin",
            Range=f"bytes={len(large) + 10}-")

    # Conditions.
    etag = head["ETag"]
    refused("304", owner.get_object, Bucket="photos", Key="dir/large.bin", IfNoneMatch=etag)
    refused("PreconditionFailed", owner.get_object, Bucket="photos", Key="dir/large.bin",
            IfMatch='"0123"')
    assert owner.get_object(Bucket="photos", Key="dir/large.bin", IfMatch=etag)["ContentLength"] == len(large)
    refused("PreconditionFailed", owner.put_object, Bucket="photos", Key="small.txt", Body=b"x",
            IfNoneMatch="*")
    owner.put_object(Bucket="photos", Key="created-once", Body=b"1", IfNoneMatch="*")

    # A wrong Content-MD5 writes nothing.
    refused("BadDigest", owner.put_object, Bucket="photos", Key="small.txt", Body=b"changed",
            ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert owner.get_object(Bucket="photos", Key="small.txt")["Body"].read() == small

    # Listings: v2 pages, v1 markers, delimiters, versions.
    keys = [f"list/{i:03}" for i in range(25)] + ["list/sub/a", "list/sub/b"]
    for key in keys:
        owner.put_object(Bucket="photos", Key=key, Body=key.encode())
    seen, token = [], None
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = owner.list_objects_v2(Bucket="photos", Prefix="list/", MaxKeys=7, **kwargs)
        seen += [o["Key"] for o in page.get("Contents", [])]
        assert page["KeyCount"] <= 7
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(keys), seen
    page = owner.list_objects_v2(Bucket="photos", Prefix="list/", Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["list/sub/"]
    assert len(page["Contents"]) == 25
    page = owner.list_objects(Bucket="photos", Prefix="list/", Marker="list/020")
    assert [o["Key"] for o in page["Contents"]] == sorted(keys)[21:]
    page = owner.list_objects_v2(Bucket="photos", StartAfter="list/sub/a")
    assert [o["Key"] for o in page["Contents"]] == ["list/sub/b", "small.txt"]
    versions = owner.list_object_versions(Bucket="photos", Prefix="list/sub/")["Versions"]
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions] == [
        ("list/sub/a", "null", True), ("list/sub/b", "null", True)]

    # Copies.
    owner.copy_object(Bucket="photos", Key="copy.bin", CopySource={"Bucket": "photos", "Key": "dir/large.bin"})
    assert owner.get_object(Bucket="photos", Key="copy.bin")["Body"].read() == large
    refused("InvalidRequest", owner.copy_object, Bucket="photos", Key="small.txt",
            CopySource={"Bucket": "photos", "Key": "small.txt"})
    owner.copy_object(Bucket="photos", Key="small.txt", CopySource={"Bucket": "photos", "Key": "small.txt"},
                      MetadataDirective="REPLACE", Metadata={"colour": "red"}, ContentType="text/x-shoal")
    got = owner.get_object(Bucket="photos", Key="small.txt")
    assert got["Metadata"] == {"colour": "red"} and got["Body"].read() == small

    # Multipart: three parts, listed, completed with S3's ETag.
    parts_data = [data(10, 5 * MiB), data(11, 5 * MiB), data(12, MiB + 7)]
    upload = owner.create_multipart_upload(Bucket="photos", Key="multi.bin", ContentType="video/mp4")["UploadId"]
    etags = [owner.upload_part(Bucket="photos", Key="multi.bin", UploadId=upload, PartNumber=n + 1,
                               Body=body)["ETag"] for n, body in enumerate(parts_data)]
    listed = owner.list_parts(Bucket="photos", Key="multi.bin", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MiB), (2, 5 * MiB), (3, MiB + 7)]
    uploads = owner.list_multipart_uploads(Bucket="photos")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("multi.bin", upload)]
    refused("InvalidPartOrder", owner.complete_multipart_upload, Bucket="photos", Key="multi.bin",
            UploadId=upload, MultipartUpload={"Parts": [
                {"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]})
    done = owner.complete_multipart_upload(
        Bucket="photos", Key="multi.bin", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    whole = b"".join(parts_data)
    md5s = b"".join(hashlib.md5(p).digest() for p in parts_data)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"', done["ETag"]
    got = owner.get_object(Bucket="photos", Key="multi.bin")
    assert got["Body"].read() == whole and got["ContentType"] == "video/mp4"
    part = owner.get_object(Bucket="photos", Key="multi.bin", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}")
    assert part["Body"].read() == whole[5 * MiB - 3:5 * MiB + 3]
    assert owner.list_multipart_uploads(Bucket="photos").get("Uploads", []) == []
    again = owner.complete_multipart_upload(
        Bucket="photos", Key="multi.bin", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]})
    assert again["ETag"] == done["ETag"]
    second = owner.get_object(Bucket="photos", Key="multi.bin", PartNumber=2)
    assert second["Body"].read() == parts_data[1] and second["PartsCount"] == 3
    assert owner.head_object(Bucket="photos", Key="multi.bin", PartNumber=3)["ContentLength"] == MiB + 7
    refused("InvalidPart", owner.get_object, Bucket="photos", Key="multi.bin", PartNumber=4)
    # A part copied from a range of another object.
    copied = owner.create_multipart_upload(Bucket="photos", Key="copied.bin")["UploadId"]
    part = owner.upload_part_copy(Bucket="photos", Key="copied.bin", UploadId=copied, PartNumber=1,
                                  CopySource={"Bucket": "photos", "Key": "multi.bin"},
                                  CopySourceRange=f"bytes={MiB}-{3 * MiB - 1}")
    owner.complete_multipart_upload(Bucket="photos", Key="copied.bin", UploadId=copied, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    assert owner.get_object(Bucket="photos", Key="copied.bin")["Body"].read() == whole[MiB:3 * MiB]
    small_parts = owner.create_multipart_upload(Bucket="photos", Key="tiny.bin")["UploadId"]
    tags = [owner.upload_part(Bucket="photos", Key="tiny.bin", UploadId=small_parts, PartNumber=n,
                              Body=b"x" * 100)["ETag"] for n in (1, 2)]
    refused("EntityTooSmall", owner.complete_multipart_upload, Bucket="photos", Key="tiny.bin",
            UploadId=small_parts, MultipartUpload={"Parts": [
                {"PartNumber": n, "ETag": t} for n, t in zip((1, 2), tags)]})
    owner.abort_multipart_upload(Bucket="photos", Key="tiny.bin", UploadId=small_parts)
    refused("NoSuchUpload", owner.list_parts, Bucket="photos", Key="tiny.bin", UploadId=small_parts)

    # boto3's own transfer manager (parallel parts).
    path = os.path.join(tempfile.mkdtemp(), "upload.bin")
    body = data(20, 9 * MiB + 3)
    with open(path, "wb") as f:
        f.write(body)
    owner.upload_file(path, "photos", "transfer.bin", Config=boto3.s3.transfer.TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2))
    owner.download_file("photos", "transfer.bin", path + ".back")
    assert open(path + ".back", "rb").read() == body

    # A presigned GET, fetched by plain HTTP.
    url = owner.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "small.txt"},
                                       ExpiresIn=60)
    session = requests.Session()
    session.trust_env = False
    fetched = session.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == small, fetched.text
    tampered = session.get(url.replace("small.txt", "copy.bin"), timeout=10)
    assert tampered.status_code == 403 and b"SignatureDoesNotMatch" in tampered.content, tampered.text

    # Deleting: one, many, then the bucket once empty.
    refused("BucketNotEmpty", owner.delete_bucket, Bucket="photos")
    owner.delete_object(Bucket="photos", Key="copy.bin")
    owner.delete_object(Bucket="photos", Key="copy.bin")  # absent: still 204
    everything = [o["Key"] for o in owner.list_objects_v2(Bucket="photos")["Contents"]]
    deleted = owner.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": k} for k in everything]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(everything)
    assert owner.list_objects_v2(Bucket="photos").get("Contents", []) == []
    owner.delete_bucket(Bucket="photos")
    refused("404", owner.head_bucket, Bucket="photos")


def rights():
    owner.put_object(Bucket="shared", Key="doc", Body=b"shared doc")
    assert reader.get_object(Bucket="shared", Key="doc")["Body"].read() == b"shared doc"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket="shared")["Contents"]] == ["doc"]
    refused("AccessDenied", reader.put_object, Bucket="shared", Key="doc", Body=b"overwritten")
    refused("AccessDenied", reader.delete_object, Bucket="shared", Key="doc")
    refused("AccessDenied", reader.create_bucket, Bucket="readers-bucket")
    refused("AccessDenied", stranger.get_object, Bucket="shared", Key="doc")
    refused("AccessDenied", stranger.list_objects_v2, Bucket="shared")
    assert [b["Name"] for b in stranger.list_buckets()["Buckets"]] == []
    assert [b["Name"] for b in reader.list_buckets()["Buckets"]] == ["shared"]
    wrong = client(owner_id, "x" * 40)
    refused("SignatureDoesNotMatch", wrong.get_object, Bucket="shared", Key="doc")
    refused("InvalidAccessKeyId", client("SH000000000000000000", "x" * 40).list_buckets)
    anonymous = client(owner_id, owner_secret, signature_version=botocore.UNSIGNED)
    refused("AccessDenied", anonymous.get_object, Bucket="shared", Key="doc")
    assert owner.get_object(Bucket="shared", Key="doc")["Body"].read() == b"shared doc"
    owner.delete_object(Bucket="shared", Key="doc")


def aws_cli():
    aws = shutil.which("aws")
    if aws is None:
        assert not os.environ.get("SHOAL_REQUIRE_PYTHON"), "the aws CLI is required"
        print("SKIPPED the aws CLI: not installed")
        return
    env = dict(os.environ, AWS_ACCESS_KEY_ID=owner_id, AWS_SECRET_ACCESS_KEY=owner_secret,
               AWS_DEFAULT_REGION="us-east-1", AWS_CA_BUNDLE="", NO_PROXY="*")

    def run(*args, codes=(0,)):
        done = subprocess.run([aws, "--endpoint-url", endpoint, *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode in codes, f"aws {args}: {done.stdout}{done.stderr}"
        return done.stdout

    tree = tempfile.mkdtemp()
    files = {"a.txt": b"alpha", "sub/b.bin": data(30, 2 * MiB), "sub/deeper/c": b""}
    for name, body in files.items():
        os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
        with open(os.path.join(tree, name), "wb") as f:
            f.write(body)
    run("s3", "sync", tree, "s3://shared/tree/")
    listing = run("s3", "ls", "--recursive", "s3://shared/tree/")
    for name in files:
        assert f"tree/{name}" in listing, listing
    back = tempfile.mkdtemp()
    run("s3", "cp", "--recursive", "s3://shared/tree/", back)
    for name, body in files.items():
        assert open(os.path.join(back, name), "rb").read() == body, name
    run("s3", "rm", "--recursive", "s3://shared/tree/")
    # (`aws s3 ls` exits 1 when nothing matches.)
    assert run("s3", "ls", "--recursive", "s3://shared/tree/", codes=(0, 1)) == ""


def tool(name):
    """The path of a client program, or None (then skipped, except in CI)."""
    path = shutil.which(name)
    if path is None:
        assert not os.environ.get("SHOAL_REQUIRE_PYTHON"), f"{name} is required"
        print(f"SKIPPED {name}: not installed")
    return path


def a_tree():
    tree = tempfile.mkdtemp()
    files = {"one.txt": b"first", "two/2.bin": data(50, MiB + 5), "two/three/3.bin": data(51, 3 * MiB)}
    for name, body in files.items():
        os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
        with open(os.path.join(tree, name), "wb") as f:
            f.write(body)
    return tree, files


def checked(args, env=None):
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def rclone():
    path = tool("rclone")
    if path is None:
        return
    env = dict(os.environ, RCLONE_CONFIG_SHOAL_TYPE="s3", RCLONE_CONFIG_SHOAL_PROVIDER="Other",
               RCLONE_CONFIG_SHOAL_ACCESS_KEY_ID=owner_id, RCLONE_CONFIG_SHOAL_SECRET_ACCESS_KEY=owner_secret,
               RCLONE_CONFIG_SHOAL_ENDPOINT=endpoint, RCLONE_CONFIG_SHOAL_REGION="us-east-1",
               RCLONE_CONFIG_SHOAL_FORCE_PATH_STYLE="true", NO_PROXY="*")
    tree, files = a_tree()
    rc = [path, "--config", "/dev/null", "--s3-upload-cutoff", "2M", "--s3-chunk-size", "5M"]
    checked(rc + ["copy", tree, "shoal:shared/rclone"], env)
    # Checksums: rclone compares every file's MD5 with the object's ETag.
    checked(rc + ["check", tree, "shoal:shared/rclone"], env)
    listed = checked(rc + ["lsf", "-R", "shoal:shared/rclone"], env).split()
    assert sorted(n for n in listed if not n.endswith("/")) == sorted(files), listed
    back = tempfile.mkdtemp()
    checked(rc + ["copy", "shoal:shared/rclone", back], env)
    for name, body in files.items():
        assert open(os.path.join(back, name), "rb").read() == body, name
    checked(rc + ["delete", "shoal:shared/rclone"], env)
    assert checked(rc + ["lsf", "-R", "shoal:shared/rclone"], env).strip() == ""


def s3cmd():
    path = tool("s3cmd")
    if path is None:
        return
    host = endpoint.split("://", 1)[1]
    config = os.path.join(tempfile.mkdtemp(), "s3cfg")
    with open(config, "w") as f:
        f.write(f"[default]\naccess_key = {owner_id}\nsecret_key = {owner_secret}\nhost_base = {host}\n"
                f"host_bucket = {host}\nuse_https = False\nbucket_location = us-east-1\n"
                "multipart_chunk_size_mb = 5\nsignature_v2 = False\n")
    tree, files = a_tree()
    cmd = [path, "-c", config, "--no-progress"]
    checked(cmd + ["put", "--recursive", tree + "/", "s3://shared/s3cmd/"])
    listed = checked(cmd + ["ls", "--recursive", "s3://shared/s3cmd/"])
    for name in files:
        assert f"s3://shared/s3cmd/{name}" in listed, listed
    back = tempfile.mkdtemp()
    for name, body in files.items():
        target = os.path.join(back, name.replace("/", "_"))
        checked(cmd + ["get", f"s3://shared/s3cmd/{name}", target])
        assert open(target, "rb").read() == body, name
    checked(cmd + ["del", "--recursive", "--force", "s3://shared/s3cmd/"])
    assert checked(cmd + ["ls", "--recursive", "s3://shared/s3cmd/"]).strip() == ""


def minio_client():
    try:
        import minio
    except ImportError:
        assert not os.environ.get("SHOAL_REQUIRE_PYTHON"), "the minio client is required"
        print("SKIPPED minio: not installed")
        return
    import io
    host = endpoint.split("://", 1)[1]
    mc = minio.Minio(host, access_key=owner_id, secret_key=owner_secret, secure=False, region="us-east-1")
    body = data(60, 11 * MiB + 1)
    # Parts of 5 MiB: a multipart upload.
    mc.put_object("shared", "minio/big.bin", io.BytesIO(body), len(body), part_size=5 * MiB)
    mc.put_object("shared", "minio/small.txt", io.BytesIO(b"small"), 5, content_type="text/plain")
    assert mc.get_object("shared", "minio/big.bin").read() == body
    assert mc.get_object("shared", "minio/big.bin", offset=MiB, length=10).read() == body[MiB:MiB + 10]
    assert mc.stat_object("shared", "minio/small.txt").content_type == "text/plain"
    names = sorted(o.object_name for o in mc.list_objects("shared", prefix="minio/", recursive=True))
    assert names == ["minio/big.bin", "minio/small.txt"], names
    for name in names:
        mc.remove_object("shared", name)
    assert list(mc.list_objects("shared", prefix="minio/", recursive=True)) == []


def leave_garbage():
    # Overwritten twice, and an aborted upload: their blocks are garbage;
    # `gc/kept`'s are not.
    for seed in (40, 41):
        owner.put_object(Bucket="shared", Key="gc/kept", Body=data(seed, 2 * MiB + 1))
    owner.put_object(Bucket="shared", Key="gc/kept", Body=data(42, 3 * MiB + 1))
    upload = owner.create_multipart_upload(Bucket="shared", Key="gc/aborted")["UploadId"]
    owner.upload_part(Bucket="shared", Key="gc/aborted", UploadId=upload, PartNumber=1, Body=data(43, 2 * MiB))
    owner.abort_multipart_upload(Bucket="shared", Key="gc/aborted", UploadId=upload)


def https_and_virtual_hosts():
    """HTTPS with the cluster's CA, path style and virtual-host style
    (`<bucket>.s3.test`, the gateway's root domain, sent to loopback)."""
    from urllib.parse import urlsplit, urlunsplit
    ca = os.environ["SHOAL_CA"]
    port = urlsplit(endpoint).port

    def s3(url, style, verify=ca):
        return boto3.client(
            "s3", endpoint_url=url, aws_access_key_id=owner_id,
            aws_secret_access_key=owner_secret, region_name="us-east-1",
            verify=verify, config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1}))

    path = s3(endpoint, "path")
    body = data(80, 2 * MiB + 3)
    path.put_object(Bucket="shared", Key="tls/path", Body=body)
    assert path.get_object(Bucket="shared", Key="tls/path")["Body"].read() == body

    virtual = s3(f"https://s3.test:{port}", "virtual")
    hosts = []

    def to_loopback(request, **_):
        url = urlsplit(request.url)
        hosts.append(url.hostname)
        request.headers["Host"] = url.netloc
        request.url = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))

    virtual.meta.events.register("before-send.s3", to_loopback)
    virtual.put_object(Bucket="shared", Key="tls/virtual", Body=body[:1000])
    assert virtual.get_object(Bucket="shared", Key="tls/virtual")["Body"].read() == body[:1000]
    listed = [o["Key"] for o in virtual.list_objects_v2(Bucket="shared", Prefix="tls/")["Contents"]]
    assert listed == ["tls/path", "tls/virtual"], listed
    virtual.delete_object(Bucket="shared", Key="tls/virtual")
    assert set(hosts) == {"shared.s3.test"}, hosts
    refused("NoSuchKey", path.get_object, Bucket="shared", Key="tls/virtual")
    # Path style names the bucket, whatever the host says.
    assert "shared" in [b["Name"] for b in path.list_buckets()["Buckets"]]
    # The node's certificate is the cluster CA's: without it, refused.
    try:
        s3(endpoint, "path", verify=True).list_buckets()
    except botocore.exceptions.SSLError:
        pass
    else:
        raise AssertionError("a client without the cluster CA trusted the node")
    # Plain HTTP to the HTTPS port does not get through.
    try:
        s3(endpoint.replace("https://", "http://"), "path").list_buckets()
    except botocore.exceptions.HTTPClientError:
        pass
    else:
        raise AssertionError("plain HTTP was served on the HTTPS port")


if phase == "clients":
    objects()
    rights()
    aws_cli()
    rclone()
    s3cmd()
    minio_client()
    leave_garbage()
elif phase == "big-upload":
    # 200 MiB in parts of 5 MiB through one gateway, with the retries
    # clients make, while the test stops and restarts another node.
    retrying = client(owner_id, owner_secret, retries={"mode": "standard", "max_attempts": 10})
    body = data(70, 200 * MiB)
    import io
    retrying.upload_fileobj(io.BytesIO(body), "shared", "big/200MiB.bin", Config=boto3.s3.transfer.TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4))
    got = retrying.get_object(Bucket="shared", Key="big/200MiB.bin")["Body"].read()
    assert hashlib.md5(got).digest() == hashlib.md5(body).digest(), "the upload did not read back intact"
elif phase == "big-check":
    got = owner.get_object(Bucket="shared", Key="big/200MiB.bin")["Body"].read()
    assert got == data(70, 200 * MiB), "the object did not survive repair and the sweep intact"
elif phase == "https-virtual":
    https_and_virtual_hosts()
elif phase == "kept":
    got = owner.get_object(Bucket="shared", Key="gc/kept")["Body"].read()
    assert got == data(42, 3 * MiB + 1), "the live object lost data to the sweep"
else:
    raise SystemExit(f"unknown phase {phase}")
print("ok")
