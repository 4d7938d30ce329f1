//! `shoal node start` settings: a config file, `SHOAL_*` variables and
//! flags, in that order of precedence; `--print-config`; invalid values
//! refused at start naming the setting; JSON logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

fn setting<'a>(printed: &'a str, name: &str) -> &'a str {
    printed
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("{name} not printed:\n{printed}"))
}

/// `shoal cluster init` in `dir`; the cluster directory.
fn init_cluster(dir: &std::path::Path) -> std::path::PathBuf {
    let cluster = dir.join("cluster");
    let init = Command::new(SHOAL)
        .args(["cluster", "init", "--dir"])
        .arg(&cluster)
        .output()
        .unwrap();
    assert!(init.status.success());
    cluster
}

/// The first line a started node prints ("node ID listening on ADDR").
fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

#[test]
fn print_config_shows_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shoal.toml");
    std::fs::write(
        &file,
        "replication = 5\nvnodes = 64\nhint_window = \"1h\"\ntombstone_grace = \"2h\"\n",
    )
    .unwrap();
    let out = Command::new(SHOAL)
        .args(["node", "start", "--print-config", "--config"])
        .arg(&file)
        .args(["--replication", "4", "--set", "max_siblings=9"])
        .env("SHOAL_VNODES", "32")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(setting(&printed, "replication"), "4", "a flag beats the file");
    assert_eq!(setting(&printed, "vnodes"), "32", "a variable beats the file");
    assert_eq!(
        setting(&printed, "hint_window"),
        "\"1h\"",
        "the file beats the default"
    );
    assert_eq!(setting(&printed, "max_siblings"), "9");
    assert_eq!(
        setting(&printed, "request_timeout"),
        "\"2s\"",
        "defaults are shown"
    );
}

#[test]
fn an_invalid_setting_is_refused_at_start_naming_it_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shoal.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "data = {:?}\ncluster_dir = {:?}\nlisten = \"127.0.0.1:0\"\ntombstone_grace = \"1h\"\n",
            data,
            dir.path().join("cluster")
        ),
    )
    .unwrap();
    let out = Command::new(SHOAL)
        .args(["node", "start", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid setting `tombstone_grace`"), "{stderr}");
    assert!(!data.exists(), "a refused node created its data directory");

    std::fs::write(&file, "replicas = 3\n").unwrap();
    let out = Command::new(SHOAL)
        .args(["node", "start", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `replicas`"));
}

#[test]
fn a_node_started_from_a_config_file_logs_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init_cluster(dir.path());
    let file = dir.path().join("shoal.toml");
    std::fs::write(
        &file,
        format!(
            "data = {:?}\ncluster_dir = {:?}\nlisten = \"127.0.0.1:0\"\nlog_format = \"json\"\n",
            dir.path().join("data"),
            cluster
        ),
    )
    .unwrap();
    let mut child = Command::new(SHOAL)
        .args(["node", "start", "--config"])
        .arg(&file)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    assert!(line.contains("listening on 127.0.0.1:"), "{line}");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.trim().is_empty() && Instant::now() < deadline {
        stderr.read_line(&mut first).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    let event: serde_json::Value = serde_json::from_str(first.trim()).expect("a JSON log line");
    assert_eq!(event["level"], "INFO", "{first}");
    assert_eq!(event["fields"]["message"], "node started", "{first}");
    assert!(
        event["fields"]["node"].is_string(),
        "the node id is logged: {first}"
    );
}

/// An HTTP GET of `path` on loopback; the response body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[test]
fn metrics_are_served_in_prometheus_format_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init_cluster(dir.path());
    // A free loopback port for the endpoint.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut child = Command::new(SHOAL)
        .args([
            "node",
            "start",
            "--listen",
            "127.0.0.1:0",
            "--replication",
            "1",
            "--data",
        ])
        .arg(dir.path().join("data"))
        .arg("--cluster-dir")
        .arg(&cluster)
        .args(["--metrics", &metrics])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    let node = line.trim().rsplit(' ').next().unwrap().to_string();
    let cli = |args: &[&str]| {
        Command::new(SHOAL)
            .args(args)
            .args(["--node", &node, "--cluster-dir"])
            .arg(&cluster)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cli(&["put", "k", "v"]).status.success() {
        assert!(Instant::now() < deadline, "the node never took a write");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cli(&["get", "k", "--consistency", "one"]).status.success());
    std::thread::sleep(Duration::from_millis(1500)); // one export of the counters
    let body = http_get(&metrics, "/metrics");
    let _ = child.kill();
    let _ = child.wait();
    let has = |needle: &str| body.lines().any(|l| l.contains(needle) && !l.starts_with('#'));
    for needle in [
        "shoal_requests_total{",
        "op=\"put\"",
        "consistency=\"quorum\"",
        "outcome=\"ok\"",
        "shoal_request_duration_seconds_bucket{",
        "shoal_hints_stored_total",
        "shoal_hints_rehomed_total",
        "shoal_placement_refusals_total",
        "shoal_anti_entropy_keys_repaired_total",
        "shoal_read_repairs_total",
        "shoal_storage_bytes",
        "shoal_membership_changes_total",
    ] {
        assert!(has(needle), "no {needle} in:\n{body}");
    }
    let get = body
        .lines()
        .find(|l| l.starts_with("shoal_requests_total{") && l.contains("op=\"get\"") && l.contains("\"one\""))
        .unwrap_or_else(|| panic!("no get at ONE counted:\n{body}"));
    assert!(get.ends_with(" 1"), "{get}");
    assert!(
        body.lines().any(|l| l.starts_with("shoal_members{")
            && l.contains("status=\"normal\"")
            && l.contains("up=\"true\"")
            && l.ends_with(" 1")),
        "{body}"
    );
}
