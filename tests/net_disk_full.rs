//! A real node whose data directory is on a small tmpfs that fills up
//! (fjall underneath): writes at QUORUM keep succeeding through the other
//! two replicas, the full node says its storage failed, and once the disk
//! has room again it recovers by itself (reopening the store) and gets
//! every write it missed from the others' hints. Needs root to mount a
//! tmpfs; skipped with a message otherwise.

mod common;

use common::{TestCluster, run};
use shoal::node::DiskFailurePolicy;
use shoal::{Client, Consistency, Context};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 64 * 1024;
const WRITES: usize = 400;

fn mount_tmpfs(at: &Path, size: &str) -> bool {
    let options = format!("size={size}");
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

fn resize_tmpfs(at: &Path, size: &str) {
    let options = format!("remount,size={size}");
    let ok = Command::new("mount")
        .args(["-o", &options])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not resize the tmpfs at {}", at.display());
}

/// Copies a directory tree (the stopped node's data) into `to`.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Unmounts the tmpfs when the test ends, whatever happens.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_node_whose_disk_fills_up_is_read_only_and_recovers_by_itself_when_it_has_room() {
    run(Duration::from_secs(240), async {
        let mut cluster = TestCluster::start(3).await.unwrap();
        let full = 2;
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        let Some(mounted) = move_onto_small_disk(&mut cluster, full).await else {
            return;
        };
        let data = cluster.data_dir(full);
        let addr = cluster.addrs[full];
        let failed = fill(&cluster, full).await;
        assert!(
            failed.is_empty(),
            "{} of {WRITES} QUORUM writes failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        let status = client.admin().status(addr).await.unwrap();
        let reason = status
            .storage_failure
            .expect("the full node does not say its storage failed");
        eprintln!("the full node says: {reason}");

        // Room again: it recovers without a restart and gets the hints.
        resize_tmpfs(&data, "512m");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = client.admin().status(addr).await.unwrap();
            let others_hints: u64 = hints_held_by_others(&client, &cluster).await;
            if status.storage_failure.is_none() && status.keys >= WRITES as u64 && others_hints == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not recovered: storage {:?}, {} keys of {WRITES}, {others_hints} hints held",
                status.storage_failure,
                status.keys
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // And it takes writes itself again, at ALL.
        client
            .put("after", b"room again", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        client.close().await;
        // Unmount first: the cluster's directory is removed at shutdown,
        // and a mount inside it would keep it.
        drop(mounted);
        cluster.shutdown().await.unwrap();
    });
}

/// Restarts node `full` with its data on a 16 MiB tmpfs; `None` (and a
/// message) where a tmpfs cannot be mounted.
async fn move_onto_small_disk(cluster: &mut TestCluster, full: usize) -> Option<Mounted> {
    // Node 2's data moves onto a 16 MiB tmpfs.
    cluster.stop(full).await.unwrap();
    let data = cluster.data_dir(full);
    let saved = cluster.dir.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    copy_tree(&data, &saved);
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    if !mount_tmpfs(&data, "16m") {
        eprintln!(
            "skipped: mounting a tmpfs needs root (this test runs as uid {})",
            uid()
        );
        return None;
    }
    let mounted = Mounted(data.clone());
    // The journal is a sparse 64 MiB file: keep it sparse.
    let copied = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(saved.join("."))
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    assert!(copied, "could not copy the node's data onto the tmpfs");
    cluster.restart(full).await.unwrap();
    cluster
        .wait_until_members_up(3, Duration::from_secs(20))
        .await
        .unwrap();
    Some(mounted)
}

/// Writes of 64 KiB through node `at` until one fails or `WRITES` were
/// made; the failures.
async fn fill(cluster: &TestCluster, at: usize) -> Vec<String> {
    let through = Client::connect(&[cluster.addrs[at]], cluster.credentials().unwrap())
        .await
        .unwrap();
    let mut failed = Vec::new();
    for i in 0..WRITES {
        let key = format!("big-{i}");
        let value = incompressible(i as u64);
        if let Err(error) = through
            .put(&key, &value, &Context::empty(), Consistency::Quorum)
            .await
        {
            failed.push(format!("{key}: {error}"));
        }
    }
    through.close().await;
    failed
}

#[test]
fn with_disk_failure_policy_stop_a_node_whose_disk_fills_up_stops_with_an_error() {
    run(Duration::from_secs(240), async {
        let mut cluster = TestCluster::start(3).await.unwrap();
        let full = 2;
        cluster.disk_failure_policy = DiskFailurePolicy::Stop;
        let Some(mounted) = move_onto_small_disk(&mut cluster, full).await else {
            return;
        };
        // Requests the full node was serving when it stopped fail; that
        // is what the policy asks for.
        fill(&cluster, 0).await;
        let node = cluster.nodes[full].take().expect("started");
        let stopped = tokio::time::timeout(Duration::from_secs(30), node.wait())
            .await
            .expect("the full node did not stop");
        let error = stopped.expect_err("the node stopped without an error");
        assert!(error.to_string().contains("disk_failure_policy"), "{error}");
        // The other two still serve QUORUM.
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        client
            .put("after", b"two left", &Context::empty(), Consistency::Quorum)
            .await
            .unwrap();
        client.close().await;
        // Unmount first: the cluster's directory is removed at shutdown,
        // and a mount inside it would keep it.
        drop(mounted);
        cluster.shutdown().await.unwrap();
    });
}

/// Hints the other nodes hold.
async fn hints_held_by_others(client: &Client, cluster: &TestCluster) -> u64 {
    let mut held = 0;
    for &addr in &cluster.addrs[..2] {
        let status = client.admin().status(addr).await.unwrap();
        held += status.hints.iter().map(|h| h.count).sum::<u64>();
    }
    held
}

/// Bytes no compressor shrinks (xorshift from `seed`).
fn incompressible(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..VALUE_BYTES / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| std::os::unix::fs::MetadataExt::uid(&m))
}
