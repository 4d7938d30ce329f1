//! Real shoal nodes on 127.0.0.1 for integration tests: started in-process
//! on ephemeral ports, in temporary directories, stopped at the end.
#![allow(dead_code)]

use std::time::Duration;

pub mod raw;

/// Runs the `shoal` binary with `args`, without the environment's
/// SHOAL_CLUSTER_DIR and SHOAL_NODE.
pub fn shoal_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .env_remove("SHOAL_CLUSTER_DIR")
        .env_remove("SHOAL_NODE")
        .output()
        .unwrap()
}

/// The standard output of a command that must have succeeded.
pub fn succeeded(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[path = "../../src/cli/local.rs"]
mod local;

#[allow(unused_imports)]
pub use local::LocalCluster as TestCluster;

/// Runs an async test body with a hard time bound.
pub fn run<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(limit, body)
            .await
            .expect("test exceeded its time bound");
    });
}
