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
    let cluster = dir.path().join("cluster");
    assert!(
        Command::new(SHOAL)
            .args(["cluster", "init", "--dir"])
            .arg(&cluster)
            .output()
            .unwrap()
            .status
            .success()
    );
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
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
