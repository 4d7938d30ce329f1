//! The core must stay free of I/O so the simulator can run it: this test
//! fails if any file under src/proto names an async runtime, the network or
//! storage crates, sockets, a clock, or the global RNG.

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "tokio",
    "quinn",
    "fjall",
    "Instant::now",
    "SystemTime::now",
    "SystemTime",
    "rand::rng",
    "thread_rng",
    "std::thread",
    "std::fs",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
];

/// Whether `line` names `word` as a whole path or identifier: `rand::rng`
/// matches `rand::rng()` but not `rand::rngs::StdRng`.
fn names(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        let continues = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !continues(before) && !continues(after)
    })
}

#[test]
fn the_matcher_sees_whole_names_only() {
    assert!(names("let r = rand::rng();", "rand::rng"));
    assert!(names("use tokio::sync;", "tokio"));
    assert!(!names("use rand::rngs::StdRng;", "rand::rng"));
    assert!(!names("let tokiox = 1;", "tokio"));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/proto exists") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_names_no_runtime_network_storage_clock_or_global_rng() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 8, "found only {files:?}");
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in FORBIDDEN {
                if names(line, word) {
                    violations.push(format!("{}:{}: names `{word}`", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the core must stay sans-IO:\n{}",
        violations.join("\n")
    );
}
