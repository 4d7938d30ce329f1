//! The HTTP API on real nodes, driven by curl and by Python `requests`:
//! values and siblings, contexts, listings, every error, client
//! certificates and roles, bearer tokens and their revocation, limits, and
//! plain HTTP on loopback.

mod common;

use common::{TestCluster, run};
use shoal::net::tls::Role;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One curl call's status, headers and body.
struct Curl {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Curl {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON (status {}): {:?}; headers: {}",
                self.status,
                self.text(),
                self.headers
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    }

    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

/// Runs curl with `args` (bounded to 20 s), off the async runtime.
async fn curl(args: Vec<String>) -> Curl {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let headers = dir.path().join("headers");
        let output = Command::new("curl")
            .args(["-s", "--noproxy", "*", "--max-time", "20", "-o", "-", "-D"])
            .arg(&headers)
            .args(["-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .expect("curl runs");
        let mut body = output.stdout;
        let split = body.iter().rposition(|&b| b == b'\n').expect("status line");
        let status = String::from_utf8_lossy(&body[split + 1..])
            .trim()
            .parse()
            .unwrap_or(0);
        body.truncate(split);
        Curl {
            status,
            headers: std::fs::read_to_string(headers).unwrap_or_default(),
            body,
        }
    })
    .await
    .unwrap()
}

/// curl arguments presenting the client certificate in `dir`.
fn with_cert(dir: &Path) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    vec![
        "--cacert".into(),
        p("ca.pem"),
        "--cert".into(),
        p("cert.pem"),
        "--key".into(),
        p("key.pem"),
    ]
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn issue(cluster: &TestCluster, name: &str, role: Role) -> PathBuf {
    let out = cluster.dir.path().join(name);
    shoal::net::tls::issue_to_dir(
        &cluster.cluster_dir(),
        &out,
        role,
        name,
        Duration::from_secs(86_400),
    )
    .unwrap();
    out
}

#[test]
fn keys_siblings_listings_and_errors_over_https() {
    run(Duration::from_secs(120), async {
        let mut cluster = TestCluster::start_with_http(3, false).await.unwrap();
        let admin = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let base = format!("https://127.0.0.1:{}", cluster.http_addr(0).unwrap().port());
        let app = issue(&cluster, "app", Role::ReadWrite);
        let reader = issue(&cluster, "reader", Role::ReadOnly);
        let url = |path: &str| format!("{base}{path}");
        let call = |dir: &Path, extra: &[&str], path: &str| {
            let mut a = with_cert(dir);
            a.extend(args(extra));
            a.push(url(path));
            a
        };

        // A value, as the body, with its context.
        let put = curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "hello"],
            "/v1/kv/greeting",
        ))
        .await;
        assert_eq!(put.status, 200, "{}", put.text());
        let context = put.header("x-shoal-context").expect("context header");
        assert_eq!(put.json()["context"], context.as_str());
        let got = curl(call(&app, &[], "/v1/kv/greeting")).await;
        assert_eq!((got.status, got.text().as_str()), (200, "hello"));
        // HTTP/2 too (negotiated by ALPN).
        let h2 = curl(call(&app, &["--http2"], "/v1/kv/greeting")).await;
        assert!(h2.headers.starts_with("HTTP/2 200"), "{}", h2.headers);
        assert_eq!(h2.text(), "hello");
        // A blind write: siblings, 300 multipart or JSON.
        curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "hi"],
            "/v1/kv/greeting",
        ))
        .await;
        let both = curl(call(&app, &[], "/v1/kv/greeting")).await;
        assert_eq!(both.status, 300);
        assert!(
            both.header("content-type")
                .unwrap()
                .starts_with("multipart/mixed; boundary=")
        );
        assert!(both.text().contains("hello") && both.text().contains("hi"));
        let json = curl(call(&app, &["-H", "Accept: application/json"], "/v1/kv/greeting")).await;
        assert_eq!(json.json()["values"].as_array().unwrap().len(), 2);
        // The read's context resolves them.
        let context = json.json()["context"].as_str().unwrap().to_string();
        let header = format!("X-Shoal-Context: {context}");
        curl(call(
            &app,
            &["-X", "PUT", "-H", &header, "--data-binary", "hey"],
            "/v1/kv/greeting",
        ))
        .await;
        assert_eq!(curl(call(&app, &[], "/v1/kv/greeting")).await.text(), "hey");

        // Listing pages with a cursor.
        for i in 0..5 {
            let path = format!("/v1/kv/list{i}");
            assert_eq!(
                curl(call(&app, &["-X", "PUT", "--data-binary", "v"], &path))
                    .await
                    .status,
                200
            );
        }
        let page = curl(call(&app, &[], "/v1/kv?prefix=list&limit=3")).await.json();
        let keys: Vec<&str> = page["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["list0", "list1", "list2"]);
        let cursor = page["cursor"].as_str().unwrap();
        let rest = curl(call(
            &app,
            &[],
            &format!("/v1/kv?prefix=list&limit=3&cursor={cursor}"),
        ))
        .await
        .json();
        assert_eq!(rest["keys"].as_array().unwrap().len(), 2);
        assert!(rest["cursor"].is_null());

        // Roles: a reader reads and lists, and may not write.
        assert_eq!(curl(call(&reader, &[], "/v1/kv/greeting")).await.status, 200);
        let refused = curl(call(
            &reader,
            &["-X", "PUT", "--data-binary", "x"],
            "/v1/kv/greeting",
        ))
        .await;
        assert_eq!((refused.status, refused.code().as_str()), (403, "forbidden"));
        assert_eq!(refused.json()["error"]["needed"], "readwrite");
        // Nothing without credentials.
        let ca = cluster.cluster_dir().join("ca.pem").display().to_string();
        let anonymous = curl(args(&["--cacert", &ca, &url("/v1/kv/greeting")])).await;
        assert_eq!(
            (anonymous.status, anonymous.code().as_str()),
            (401, "unauthenticated")
        );
        // The description needs none.
        let described = curl(args(&["--cacert", &ca, &url("/v1/openapi.json")])).await;
        assert!(described.json()["paths"]["/v1/kv/{key}"]["get"].is_object());

        // Errors with stable codes.
        let bad = curl(call(&app, &[], "/v1/kv/greeting?consistency=most")).await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "bad_parameter"));
        let strict = curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "s"],
            "/v1/kv/strict?sloppy=false&timeout=2s",
        ))
        .await;
        assert_eq!(strict.status, 200, "{}", strict.text());
        let bad = curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "s"],
            "/v1/kv/strict?sloppy=maybe",
        ))
        .await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "bad_parameter"));
        let bad = curl(call(&app, &[], "/v1/kv/strict?timeout=forever")).await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "bad_parameter"));
        // A time to live: read at once, 404 once it passed; out of limits, 400.
        let put = curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "t"],
            "/v1/kv/brief?ttl=1s",
        ))
        .await;
        assert_eq!(put.status, 200, "{}", put.text());
        assert_eq!(
            curl(call(&app, &[], "/v1/kv/brief?consistency=all")).await.status,
            200
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let gone = curl(call(&app, &[], "/v1/kv/brief?consistency=all")).await;
        assert_eq!((gone.status, gone.code().as_str()), (404, "not_found"));
        let bad = curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "t"],
            "/v1/kv/brief?ttl=5ms",
        ))
        .await;
        assert_eq!(
            (bad.status, bad.code().as_str()),
            (400, "bad_ttl"),
            "{}",
            bad.text()
        );
        let bad = curl(call(
            &app,
            &["-X", "PUT", "--data-binary", "t"],
            "/v1/kv/brief?ttl=soon",
        ))
        .await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "bad_parameter"));
        let absent = curl(call(&app, &[], "/v1/kv/absent")).await;
        assert_eq!((absent.status, absent.code().as_str()), (404, "not_found"));
        let huge = cluster.dir.path().join("huge");
        std::fs::write(
            &huge,
            vec![7u8; shoal::proto::Config::default().max_value_bytes + 1],
        )
        .unwrap();
        let data = format!("@{}", huge.display());
        let too_large = curl(call(&app, &["-X", "PUT", "--data-binary", &data], "/v1/kv/huge")).await;
        assert_eq!(
            (too_large.status, too_large.code().as_str()),
            (413, "value_too_large")
        );
        let bad_context = curl(call(
            &app,
            &["-X", "DELETE", "-H", "X-Shoal-Context: zz"],
            "/v1/kv/greeting",
        ))
        .await;
        assert_eq!(
            (bad_context.status, bad_context.code().as_str()),
            (400, "malformed_context")
        );
        let no_route = curl(call(&app, &[], "/v2/anything")).await;
        assert_eq!((no_route.status, no_route.code().as_str()), (404, "no_route"));

        // Status and metrics.
        let status = curl(call(&app, &[], "/v1/status")).await.json();
        assert_eq!(status["members"].as_array().unwrap().len(), 3);
        assert!(
            status["node"].as_str().is_some_and(|id| id.len() == 16),
            "node ids in hex"
        );
        let counters = status["counters"].as_object().unwrap();
        assert_eq!(counters.len(), 3, "every member's own counters");
        assert!(
            counters.values().all(|c| c["keys"].as_u64().is_some()),
            "{counters:?}"
        );
        let metrics = curl(call(&app, &[], "/metrics")).await;
        assert!(
            metrics.text().contains("shoal_requests_total"),
            "{}",
            metrics.text()
        );

        // Delete with the context.
        let context = curl(call(&app, &[], "/v1/kv/greeting"))
            .await
            .header("x-shoal-context")
            .unwrap();
        let header = format!("X-Shoal-Context: {context}");
        assert_eq!(
            curl(call(&app, &["-X", "DELETE", "-H", &header], "/v1/kv/greeting"))
                .await
                .status,
            200
        );
        assert_eq!(curl(call(&app, &[], "/v1/kv/greeting")).await.status, 404);

        // A client not written in Rust.
        python(&base, &app).await;

        // Two nodes down: ALL cannot be met, and says how far it got.
        cluster.stop(1).await.unwrap();
        cluster.stop(2).await.unwrap();
        let failed = curl(call(&app, &[], "/v1/kv/list0?consistency=all&timeout=1s")).await;
        assert_eq!(
            (failed.status, failed.code().as_str()),
            (503, "quorum_not_met"),
            "{}",
            failed.text()
        );
        assert_eq!(failed.json()["error"]["required"], 3);
        assert!(failed.header("retry-after").is_some());
        admin.close().await;
        cluster.shutdown().await.unwrap();
    });
}

/// Runs tests/http_client.py against `base` with the client in `certs`.
/// Where python3 or requests is missing, says so and skips, unless
/// SHOAL_REQUIRE_PYTHON is set (CI installs both and sets it).
async fn python(base: &str, certs: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http_client.py");
    let (base, certs) = (base.to_string(), certs.to_path_buf());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").arg(script).arg(base).arg(certs).output()
    })
    .await
    .unwrap();
    let missing = match &output {
        Err(_) => true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).contains("No module named 'requests'"),
    };
    if missing {
        assert!(
            std::env::var_os("SHOAL_REQUIRE_PYTHON").is_none(),
            "python3 with requests is required (SHOAL_REQUIRE_PYTHON is set)"
        );
        eprintln!("SKIPPED the Python requests client: python3 with `requests` is not installed");
        return;
    }
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "python client: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bearer_tokens_authenticate_by_role_and_stop_within_seconds_of_revocation() {
    run(Duration::from_secs(90), async {
        let cluster = TestCluster::start_with_http(3, true).await.unwrap();
        let admin = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let base = format!("http://127.0.0.1:{}", cluster.http_addr(1).unwrap().port());
        let (id, token) = admin
            .admin()
            .create_token("dashboard", Role::ReadOnly)
            .await
            .unwrap();
        let (_, writer) = admin
            .admin()
            .create_token("writer", Role::ReadWrite)
            .await
            .unwrap();
        let bearer = |token: &str| format!("Authorization: Bearer {token}");
        let put = curl(args(&[
            "-X",
            "PUT",
            "-H",
            &bearer(&writer),
            "--data-binary",
            "v",
            &format!("{base}/v1/kv/k"),
        ]))
        .await;
        assert_eq!(put.status, 200, "{}", put.text());
        let read = curl(args(&["-H", &bearer(&token), &format!("{base}/v1/kv/k")])).await;
        assert_eq!((read.status, read.text().as_str()), (200, "v"));
        let refused = curl(args(&[
            "-X",
            "DELETE",
            "-H",
            &bearer(&token),
            &format!("{base}/v1/kv/k"),
        ]))
        .await;
        assert_eq!((refused.status, refused.code().as_str()), (403, "forbidden"));
        // A wrong secret, and no token at all.
        let forged = format!("{}0", &token[..token.len() - 1]);
        let forged = if forged == token {
            format!("{}1", &token[..token.len() - 1])
        } else {
            forged
        };
        let wrong = curl(args(&["-H", &bearer(&forged), &format!("{base}/v1/kv/k")])).await;
        assert_eq!((wrong.status, wrong.code().as_str()), (401, "bad_token"));
        let none = curl(args(&[&format!("{base}/v1/kv/k")])).await;
        assert_eq!((none.status, none.code().as_str()), (401, "unauthenticated"));
        assert!(none.header("www-authenticate").is_some());
        // Listed, then revoked: refused within 5 s.
        let tokens = admin.admin().tokens().await.unwrap();
        assert!(
            tokens
                .iter()
                .any(|(i, r)| *i == id && r.name == "dashboard" && r.role == "readonly")
        );
        assert!(admin.admin().revoke_token(&id).await.unwrap());
        let revoked = Instant::now();
        loop {
            let read = curl(args(&["-H", &bearer(&token), &format!("{base}/v1/kv/k")])).await;
            if read.status == 401 {
                assert_eq!(read.code(), "bad_token");
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(5),
                "a revoked token still works"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The other token still works.
        let read = curl(args(&["-H", &bearer(&writer), &format!("{base}/v1/kv/k")])).await;
        assert_eq!(read.status, 200);
        admin.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn plain_http_is_refused_off_loopback_and_slow_clients_are_cut_off() {
    run(Duration::from_secs(60), async {
        // Plain HTTP on a non-loopback address is refused at start.
        let dir = tempfile::tempdir().unwrap();
        shoal::net::tls::init_cluster_dir(&dir.path().join("cluster")).unwrap();
        let mut options = shoal::node::NodeOptions::new(
            dir.path().join("data"),
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("cluster"),
        );
        let mut http = shoal::node::HttpOptions::new("0.0.0.0:0".parse().unwrap());
        http.plain = true;
        options.http = Some(http);
        let refused = shoal::node::start(options).await;
        assert!(matches!(refused, Err(shoal::node::NodeError::Bind { .. })));

        // A client that sends half a request head is disconnected.
        let cluster = TestCluster::start_with_http(1, true).await.unwrap();
        let addr = cluster.http_addr(0).unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut buffer = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer)).await;
        assert!(read.is_ok(), "the slow client was never cut off");
        assert!(started.elapsed() >= Duration::from_secs(5), "cut off too early");

        // A request head past 64 KiB is refused, not buffered.
        let huge = "x".repeat(100 * 1024);
        let mut big_head = args(&["-H", &format!("X-Filler: {huge}")]);
        big_head.push(format!("http://{addr}/v1/openapi.json"));
        let refused = curl(big_head).await;
        assert!(
            refused.status == 431 || refused.status == 0,
            "a 100 KiB header was served: {}",
            refused.status
        );
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_busy_node_answers_429_and_connections_past_the_limit_are_refused() {
    use shoal::node::Durability;
    use shoal::proto::Config;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MAX_CONNECTIONS: usize = 16;
    run(Duration::from_secs(90), async {
        let mut config = Config::default();
        config.max_requests_in_flight = 1;
        let mut cluster = TestCluster::empty(Durability::Buffer, config).unwrap();
        cluster.http = Some(true);
        cluster.limits.max_connections = MAX_CONNECTIONS;
        cluster.start_nodes(3, 0).await.unwrap();
        let admin = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let (_, token) = admin.admin().create_token("load", Role::ReadOnly).await.unwrap();
        let addr = cluster.http_addr(0).unwrap();

        // 64 reads at ALL at once: one at a time fits, the rest are busy.
        let mut many = args(&["--parallel", "--parallel-max", "64", "-H"]);
        many.push(format!("Authorization: Bearer {token}"));
        for i in 0..64 {
            many.push(format!("http://{addr}/v1/kv/k{i}?consistency=all"));
        }
        let replies = curl(many).await.text();
        assert!(
            replies.contains("\"code\":\"busy\""),
            "no 429 among 64 parallel requests: {replies}"
        );

        // Connections past max_connections are dropped at once.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a connection past the limit was served: {read:?}"
        );
        drop(idle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let served = curl(args(&[&format!("http://{addr}/v1/openapi.json")])).await;
        assert_eq!(served.status, 200, "served again once connections closed");
        admin.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_watch_over_http_answers_the_change_or_304_at_its_timeout() {
    run(Duration::from_secs(90), async {
        let cluster = TestCluster::start_with_http(3, false).await.unwrap();
        let admin = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let base = format!("https://127.0.0.1:{}", cluster.http_addr(0).unwrap().port());
        let app = issue(&cluster, "app", Role::ReadWrite);
        let call = |extra: &[&str], path: &str| {
            let mut a = with_cert(&app);
            a.extend(args(extra));
            a.push(format!("{base}{path}"));
            a
        };
        let put = curl(call(&["-X", "PUT", "--data-binary", "v1"], "/v1/kv/flag")).await;
        let context = put.header("x-shoal-context").expect("context header");
        // Nothing past the context: 304 at the timeout, the context kept.
        let started = Instant::now();
        let quiet = curl(call(&[], &format!("/v1/kv/flag?watch={context}&timeout=1s"))).await;
        assert_eq!(quiet.status, 304, "{}", quiet.text());
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(quiet.header("x-shoal-context").as_deref(), Some(context.as_str()));
        // A write while the watch waits ends it with the new value.
        let waiting = tokio::spawn(curl(call(
            &[],
            &format!("/v1/kv/flag?watch={context}&timeout=15s"),
        )));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let next = curl(call(
            &[
                "-X",
                "PUT",
                "-H",
                &format!("X-Shoal-Context: {context}"),
                "--data-binary",
                "v2",
            ],
            "/v1/kv/flag",
        ))
        .await;
        assert_eq!(next.status, 200);
        let changed = waiting.await.unwrap();
        assert_eq!((changed.status, changed.text().as_str()), (200, "v2"));
        assert_ne!(changed.header("x-shoal-context"), Some(context.clone()));
        // An empty context: any state is a change, answered at once.
        let any = curl(call(&[], "/v1/kv/flag?watch=&timeout=10s")).await;
        assert_eq!((any.status, any.text().as_str()), (200, "v2"));
        // A timeout past the node's limit, and a malformed context.
        let long = curl(call(&[], "/v1/kv/flag?watch=&timeout=11m")).await;
        assert_eq!(long.status, 400, "{}", long.text());
        let bad = curl(call(&[], "/v1/kv/flag?watch=zz")).await;
        assert_eq!((bad.status, bad.code().as_str()), (400, "malformed_context"));
        admin.close().await;
        cluster.shutdown().await.unwrap();
    });
}
