//! The `shoal` binary drives a real 3-process cluster end to end: cluster
//! init, node start with a seed, put / get / delete / status, leave, and a
//! graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// A node process, killed if the test ends early.
struct NodeProcess {
    child: Child,
    addr: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    fn start(dir: &Path, name: &str, seed: Option<&str>) -> NodeProcess {
        let mut command = Command::new(SHOAL);
        command
            .args(["node", "start", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join(name))
            .arg("--cluster-dir")
            .arg(dir.join("cluster"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(seed) = seed {
            command.args(["--seed", seed]);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "node <id> listening on <addr>"
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(line.contains("listening on"), "unexpected first line: {line:?}");
        NodeProcess { child, addr }
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn shoal(dir: &Path, node: &str, args: &[&str]) -> Output {
    Command::new(SHOAL)
        .args(args)
        .env("SHOAL_CLUSTER_DIR", dir.join("cluster"))
        .env("SHOAL_NODE", node)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn wait_for_members(dir: &Path, node: &str, up: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = shoal(dir, node, &["status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        // Members up and normal (joined): a joining node owns nothing yet.
        let ready = text
            .lines()
            .filter(|l| l.contains("  normal ") && l.contains("  up  "))
            .count();
        if out.status.success() && ready == up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not reach {up} live, normal members"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_cli_drives_a_three_process_cluster_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let init = Command::new(SHOAL)
        .args(["cluster", "init", "--dir"])
        .arg(dir.path().join("cluster"))
        .output()
        .unwrap();
    assert!(init.status.success());
    let again = Command::new(SHOAL)
        .args(["cluster", "init", "--dir"])
        .arg(dir.path().join("cluster"))
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "re-init must refuse to overwrite the CA"
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).lines().count(),
        1,
        "one-line error"
    );

    let first = NodeProcess::start(dir.path(), "n1", None);
    let second = NodeProcess::start(dir.path(), "n2", Some(&first.addr));
    let mut third = NodeProcess::start(dir.path(), "n3", Some(&first.addr));
    let node = first.addr.clone();
    wait_for_members(dir.path(), &node, 3);

    let put = stdout(&shoal(
        dir.path(),
        &node,
        &["put", "greeting", "hello", "--consistency", "all"],
    ));
    assert!(put.starts_with("ok\ncontext: "), "{put}");
    let get = stdout(&shoal(
        dir.path(),
        &second.addr,
        &["get", "greeting", "--consistency", "2,2"],
    ));
    let mut lines = get.lines();
    assert_eq!(lines.next(), Some("hello"));
    let context = lines
        .next()
        .unwrap()
        .strip_prefix("context: ")
        .unwrap()
        .to_string();

    // A value with a time to live reads until it passes, then not at all.
    stdout(&shoal(
        dir.path(),
        &node,
        &["put", "otp", "123456", "--ttl", "2s", "--consistency", "all"],
    ));
    let get = stdout(&shoal(dir.path(), &node, &["get", "otp", "--consistency", "all"]));
    assert!(get.starts_with("123456\n"), "{get}");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let get = stdout(&shoal(dir.path(), &node, &["get", "otp", "--consistency", "all"]));
    assert!(get.starts_with("(not found)\n"), "{get}");

    // Two blind writes become siblings; a write with their context resolves them.
    stdout(&shoal(
        dir.path(),
        &node,
        &["put", "color", "red", "--consistency", "all"],
    ));
    stdout(&shoal(
        dir.path(),
        &node,
        &["put", "color", "blue", "--consistency", "all"],
    ));
    let get = stdout(&shoal(
        dir.path(),
        &node,
        &["get", "color", "--consistency", "all"],
    ));
    assert!(
        get.contains("red\n") && get.contains("blue\n") && get.contains("2 siblings"),
        "{get}"
    );
    let color_context = get
        .lines()
        .last()
        .unwrap()
        .strip_prefix("context: ")
        .unwrap()
        .to_string();
    let args = [
        "put",
        "color",
        "purple",
        "--context",
        &color_context,
        "--consistency",
        "all",
    ];
    stdout(&shoal(dir.path(), &node, &args));
    let get = stdout(&shoal(
        dir.path(),
        &node,
        &["get", "color", "--consistency", "all"],
    ));
    assert!(get.starts_with("purple\ncontext: "), "{get}");

    let args = [
        "delete",
        "greeting",
        "--context",
        &context,
        "--consistency",
        "all",
    ];
    stdout(&shoal(dir.path(), &node, &args));
    let get = stdout(&shoal(
        dir.path(),
        &node,
        &["get", "greeting", "--consistency", "all"],
    ));
    assert!(get.starts_with("(not found)"), "{get}");

    let status = stdout(&shoal(dir.path(), &node, &["status"]));
    assert_eq!(status.matches("normal").count(), 3, "{status}");
    let json = stdout(&shoal(dir.path(), &node, &["status", "--json"]));
    check_status_json(&json);
    binary_values_round_trip(dir.path(), &node);

    let bad = shoal(
        dir.path(),
        &node,
        &["get", "x", "--context", "zz", "--consistency", "9,9"],
    );
    assert!(!bad.status.success());

    // The third node leaves and its process exits 0.
    let left = shoal(dir.path(), &third.addr, &["node", "leave"]);
    assert!(left.status.success(), "{}", String::from_utf8_lossy(&left.stderr));
    assert!(third.wait_exit(Duration::from_secs(15)).success());
    let status = stdout(&shoal(dir.path(), &node, &["status"]));
    assert!(status.contains("left"), "{status}");

    // SIGTERM stops a node gracefully with exit code 0.
    let mut second = second;
    let term = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(second.wait_exit(Duration::from_secs(15)).success());
    drop(first);
}

/// `status --json` gives node ids as the 16 hex digits shoal prints
/// everywhere (JSON readers round numbers past 2^53).
fn check_status_json(json: &str) {
    let status: serde_json::Value = serde_json::from_str(json).unwrap();
    let is_id = |v: &serde_json::Value| {
        v.as_str()
            .is_some_and(|s| s.len() == 16 && u64::from_str_radix(s, 16).is_ok())
    };
    assert!(is_id(&status["node"]), "{json}");
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{json}");
    assert!(members.iter().all(|m| is_id(&m["node"])), "{json}");
    let counters = status["counters"].as_object().unwrap();
    assert!(
        counters
            .keys()
            .all(|k| is_id(&serde_json::Value::String(k.clone()))),
        "{json}"
    );
}

/// Values that are not text: `put --file` (a path, or `-` for standard
/// input) and `get --output` (a path, or `-` for raw bytes on standard
/// output) carry any bytes, and `get --json` gives them as hex.
fn binary_values_round_trip(dir: &Path, node: &str) {
    let bytes: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\n']).collect();
    let file = dir.join("value.bin");
    std::fs::write(&file, &bytes).unwrap();
    let put = shoal(
        dir,
        node,
        &[
            "put",
            "bin",
            "--file",
            file.to_str().unwrap(),
            "--consistency",
            "all",
        ],
    );
    assert!(stdout(&put).starts_with("ok\n"));
    let out = dir.join("out.bin");
    stdout(&shoal(
        dir,
        node,
        &[
            "get",
            "bin",
            "--output",
            out.to_str().unwrap(),
            "--consistency",
            "all",
        ],
    ));
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "--output writes the bytes");
    let raw = shoal(
        dir,
        node,
        &["get", "bin", "--output", "-", "--consistency", "all"],
    );
    assert!(raw.status.success());
    assert_eq!(raw.stdout, bytes, "--output - writes only the bytes to stdout");
    assert!(String::from_utf8_lossy(&raw.stderr).starts_with("context: "));
    let json: serde_json::Value = serde_json::from_str(&stdout(&shoal(
        dir,
        node,
        &["get", "bin", "--json", "--consistency", "all"],
    )))
    .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(json["values"][0]["value_hex"], serde_json::Value::String(hex));

    let mut put = Command::new(SHOAL)
        .args(["put", "piped", "--file", "-", "--consistency", "all"])
        .env("SHOAL_CLUSTER_DIR", dir.join("cluster"))
        .env("SHOAL_NODE", node)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut put.stdin.take().unwrap(), b"from stdin\0").unwrap();
    stdout(&put.wait_with_output().unwrap());
    let raw = shoal(
        dir,
        node,
        &["get", "piped", "--output", "-", "--consistency", "all"],
    );
    assert_eq!(raw.stdout, b"from stdin\0");

    let absent = shoal(dir, node, &["get", "nothing-here", "--output", "-"]);
    assert!(!absent.status.success());
    assert!(String::from_utf8_lossy(&absent.stderr).contains("not found"));
    let neither = shoal(dir, node, &["put", "k"]);
    assert!(!neither.status.success(), "a put needs a value or --file");
}

#[test]
fn after_a_sigkill_quorum_still_works_and_all_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let init = Command::new(SHOAL)
        .args(["cluster", "init", "--dir"])
        .arg(dir.path().join("cluster"))
        .output();
    assert!(init.unwrap().status.success());
    let first = NodeProcess::start(dir.path(), "n1", None);
    let _second = NodeProcess::start(dir.path(), "n2", Some(&first.addr));
    let mut third = NodeProcess::start(dir.path(), "n3", Some(&first.addr));
    let node = first.addr.clone();
    wait_for_members(dir.path(), &node, 3);
    stdout(&shoal(
        dir.path(),
        &node,
        &["put", "k", "before", "--consistency", "all"],
    ));

    // No goodbye: only the failure detector can notice.
    third.child.kill().unwrap();
    third.child.wait().unwrap();
    let killed_at = Instant::now();
    wait_for_members(dir.path(), &node, 2);
    let detected = killed_at.elapsed();
    assert!(
        detected < Duration::from_secs(15),
        "failure detection took {detected:?}"
    );

    stdout(&shoal(
        dir.path(),
        &node,
        &["put", "k2", "during", "--consistency", "quorum"],
    ));
    let get = stdout(&shoal(
        dir.path(),
        &node,
        &["get", "k", "--consistency", "quorum"],
    ));
    assert!(get.starts_with("before\n"), "{get}");
    let all = shoal(dir.path(), &node, &["get", "k", "--consistency", "all"]);
    assert_eq!(all.status.code(), Some(1));
    let error = String::from_utf8_lossy(&all.stderr);
    assert_eq!(
        error.trim(),
        "error: get failed: 2 of 3 replicas answered, 3 needed (all)"
    );
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // The reader has gone, as after `| head`.
    let output = Command::new(SHOAL)
        .args(["cluster", "init", "--dir"])
        .arg(dir.path().join("cluster"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(141),
        "as a process ended by SIGPIPE: {stderr}"
    );
    // The work itself was done before the print.
    assert!(dir.path().join("cluster").exists());
}
