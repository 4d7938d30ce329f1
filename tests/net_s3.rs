//! The S3 gateway on real nodes, judged by real S3 clients (boto3, the aws
//! CLI) in tests/s3_clients.py: objects small and large, ranges,
//! conditions, listings, copies, multipart uploads, presigned URLs, the
//! rights of keys on buckets, and refusals. Then the garbage sweep: blocks
//! of overwritten objects and aborted uploads go once the grace period has
//! passed, and a live object's blocks stay.

mod common;

use common::{TestCluster, run};
use shoal::Consistency;
use shoal::client::ListOptions;
use shoal::net::s3::Rights;
use shoal::node::{Durability, S3Options};
use shoal::proto::Config;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Blocks of a 3 MiB + 1 byte object.
const KEPT_BLOCKS: usize = 4;

#[test]
fn s3_clients_work_and_garbage_is_swept() {
    run(Duration::from_secs(600), async {
        let (cluster, client, (owner, owner_secret)) = s3_cluster(Duration::from_secs(20)).await;
        let admin = client.admin();
        let (reader, reader_secret) = admin.s3_create_key("reader", false).await.unwrap();
        let (stranger, stranger_secret) = admin.s3_create_key("stranger", true).await.unwrap();
        let read = Rights {
            read: true,
            ..Rights::default()
        };
        admin.s3_allow(&reader, "shared", read).await.unwrap();
        // Through node 2's gateway: any node serves any bucket.
        let endpoint = format!("http://{}", cluster.s3_addr(1).unwrap());
        let keys = [
            owner,
            owner_secret,
            reader,
            reader_secret,
            stranger,
            stranger_secret,
        ];
        if !python(&endpoint, &keys, "clients").await {
            return cluster.shutdown().await.unwrap();
        }

        // The sweep: once the grace period has passed, only `gc/kept`'s
        // blocks are left.
        let blocks = ListOptions::prefix(b"\0shoal/s3/blocks/")
            .limit(1000)
            .consistency(Consistency::Quorum);
        let start = Instant::now();
        let left = loop {
            let left = client.list_all(&blocks).await.unwrap().len();
            if left == KEPT_BLOCKS || start.elapsed() > Duration::from_secs(90) {
                break left;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(left, KEPT_BLOCKS, "blocks left after the grace period");
        let garbage = ListOptions::prefix(b"\0shoal/s3/garbage/").consistency(Consistency::Quorum);
        let start = Instant::now();
        while !client.list_all(&garbage).await.unwrap().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "garbage records are not all swept"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(python(&endpoint, &keys, "kept").await);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn https_and_virtual_host_buckets_work_beside_path_style() {
    run(Duration::from_secs(300), async {
        let (cluster, client, (owner, secret)) = s3_cluster_with(Duration::from_secs(20), |s3| {
            s3.plain = false;
            s3.domain = Some("s3.test".to_string());
        })
        .await;
        let endpoint = format!("https://127.0.0.1:{}", cluster.s3_addr(2).unwrap().port());
        let keys = owner_only(owner, secret);
        let ca = cluster.cluster_dir().join("ca.pem").display().to_string();
        python_with(&endpoint, &keys, "https-virtual", &[("SHOAL_CA", ca)]).await;
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

/// A client sending `Expect: 100-continue` (boto3 and the aws CLI do on
/// every PutObject) holds its body until the server says `100 Continue`.
/// A PUT refused before its body is read must close the connection: kept
/// open, the server would take the start of the client's next request as
/// the unsent body and answer that request with a bare 400.
#[test]
fn a_put_refused_before_its_body_closes_the_connection() {
    run(Duration::from_secs(120), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (cluster, client, _owner) = s3_cluster(Duration::from_secs(20)).await;
        let addr = cluster.s3_addr(0).unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Anonymous, so refused without reading the body.
        let put = format!(
            "PUT /shared/refused HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10\r\n\
             Expect: 100-continue\r\n\r\n"
        );
        stream.write_all(put.as_bytes()).await.unwrap();
        // Read until the server closes; a kept connection times out here.
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the connection stays open after a refused 100-continue PUT")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 403"), "{answer}");
        assert!(!answer.contains("100 continue"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

/// Blocks of the 200 MiB object.
const BIG_BLOCKS: usize = 200;

#[test]
fn a_multipart_upload_survives_a_node_stopping_and_leaves_no_orphaned_blocks() {
    run(Duration::from_secs(600), async {
        let (mut cluster, client, (owner, secret)) = s3_cluster(Duration::from_secs(30)).await;
        let endpoint = format!("http://{}", cluster.s3_addr(0).unwrap());
        let keys = owner_only(owner, secret);

        // Node 3 stops once four of the 40 parts are in, and comes back 8 s
        // later.
        let upload = tokio::spawn({
            let (endpoint, keys) = (endpoint.clone(), keys.clone());
            async move { python(&endpoint, &keys, "big-upload").await }
        });
        let parts = ListOptions::prefix(b"\0shoal/s3/parts/").consistency(Consistency::One);
        let start = Instant::now();
        while client.list_all(&parts).await.map_or(0, |p| p.len()) < 4 {
            if upload.is_finished() {
                // Skipped (no boto3), or over before four parts were seen.
                assert!(!upload.await.unwrap(), "the upload ended before the node stopped");
                return cluster.shutdown().await.unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the upload did not begin"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster.stop(2).await.unwrap();
        assert!(!upload.is_finished(), "the upload ended before the node stopped");
        tokio::time::sleep(Duration::from_secs(8)).await;
        cluster.restart(2).await.unwrap();
        if !upload.await.unwrap() {
            return cluster.shutdown().await.unwrap();
        }
        cluster
            .wait_until_members_up(3, Duration::from_secs(30))
            .await
            .unwrap();

        // Once repair has run and the grace period has passed, every
        // replica holds the object's blocks and nothing else.
        let blocks = ListOptions::prefix(b"\0shoal/s3/blocks/")
            .limit(1000)
            .consistency(Consistency::All);
        let start = Instant::now();
        let left = loop {
            let left = client.list_all(&blocks).await.ok().map(|keys| keys.len());
            if left == Some(BIG_BLOCKS) || start.elapsed() > Duration::from_secs(150) {
                break left;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        assert_eq!(
            left,
            Some(BIG_BLOCKS),
            "blocks on the replicas after repair and the grace period"
        );
        assert!(python(&endpoint, &keys, "big-check").await);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

/// Three nodes serving plain S3 on loopback, with `grace` and a sweep
/// every 500 ms; a client; and an access key (id, secret) that owns bucket
/// `shared`.
async fn s3_cluster(grace: Duration) -> (TestCluster, shoal::Client, (String, String)) {
    s3_cluster_with(grace, |_| {}).await
}

/// [`s3_cluster`] with its S3 options changed by `change`.
async fn s3_cluster_with(
    grace: Duration,
    change: impl FnOnce(&mut S3Options),
) -> (TestCluster, shoal::Client, (String, String)) {
    let mut cluster = TestCluster::empty(Durability::Buffer, Config::default()).unwrap();
    let mut s3 = S3Options::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    s3.plain = true;
    s3.grace = grace;
    s3.sweep_every = Duration::from_millis(500);
    change(&mut s3);
    cluster.s3 = Some(s3);
    cluster.start_nodes(3, 0).await.unwrap();
    let client = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
    let admin = client.admin();
    let (owner, secret) = admin.s3_create_key("owner", true).await.unwrap();
    admin.s3_create_bucket("shared").await.unwrap();
    let all = Rights {
        read: true,
        write: true,
        owner: true,
    };
    admin.s3_allow(&owner, "shared", all).await.unwrap();
    (cluster, client, (owner, secret))
}

/// The keys tests/s3_clients.py takes, with only the owner's set.
fn owner_only(owner: String, secret: String) -> [String; 6] {
    [
        owner,
        secret,
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]
}

/// Runs tests/s3_clients.py; false if python3 or boto3 is missing (then
/// skipped, unless SHOAL_REQUIRE_PYTHON is set, as in CI).
async fn python(endpoint: &str, keys: &[String; 6], phase: &str) -> bool {
    python_with(endpoint, keys, phase, &[]).await
}

/// [`python`] with more environment variables.
async fn python_with(endpoint: &str, keys: &[String; 6], phase: &str, env: &[(&str, String)]) -> bool {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_clients.py");
    let mut args = vec![script.to_string(), endpoint.to_string()];
    args.extend(keys.iter().cloned());
    args.push(phase.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("300")
            .arg("python3")
            .args(&args)
            .env("NO_PROXY", "*")
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("AWS_PROFILE")
            .envs(env)
            .output()
    })
    .await
    .unwrap();
    let missing = match &output {
        Err(_) => true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).contains("No module named"),
    };
    if missing {
        assert!(
            std::env::var_os("SHOAL_REQUIRE_PYTHON").is_none(),
            "python3 with boto3 and requests is required (SHOAL_REQUIRE_PYTHON is set)"
        );
        eprintln!("SKIPPED the S3 clients: python3 with boto3 is not installed");
        return false;
    }
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "S3 clients ({phase}): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}
