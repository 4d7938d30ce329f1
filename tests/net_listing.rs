//! Listing keys on real nodes: the client library's pages and `list_all`,
//! deleted keys left out, and `shoal list` following pages by itself.

mod common;

use common::{TestCluster, run};
use shoal::{Consistency, Context, ListOptions};
use std::process::Command;
use std::time::Duration;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

fn key(i: usize) -> String {
    format!("user:{i:03}")
}

#[test]
fn keys_are_listed_in_order_by_the_client_and_the_cli() {
    run(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        for i in 0..120 {
            client
                .put(key(i), format!("v{i}"), &Context::empty(), Consistency::Quorum)
                .await
                .unwrap();
        }
        client
            .put("zebra", "z", &Context::empty(), Consistency::Quorum)
            .await
            .unwrap();
        let read = client.get(key(7), Consistency::Quorum).await.unwrap();
        client
            .delete(key(7), &read.context, Consistency::Quorum)
            .await
            .unwrap();

        // Pages of 50 with values, followed by hand.
        let first = ListOptions::prefix("user:").limit(50).values(true);
        let page = client.list(&first).await.unwrap();
        assert_eq!(page.keys.len(), 50);
        assert_eq!(page.keys[0].key, key(0).as_bytes());
        assert_eq!(page.keys[0].values[0].value, &b"v0"[..]);
        assert_eq!(page.keys[7].key, key(8).as_bytes(), "the deleted key is left out");
        let second = page.next_options(&first).expect("more pages");
        let page = client.list(&second).await.unwrap();
        assert_eq!(page.keys[0].key, key(51).as_bytes());

        // Everything, at ALL, through list_all.
        let all = client
            .list_all(&ListOptions::all().limit(33).consistency(Consistency::All))
            .await
            .unwrap();
        let mut expected: Vec<String> = (0..120).filter(|&i| i != 7).map(key).collect();
        expected.push("zebra".to_string());
        let listed: Vec<String> = all
            .iter()
            .map(|k| String::from_utf8(k.key.clone()).unwrap())
            .collect();
        assert_eq!(listed, expected);

        // The listed context replaces what the listing saw.
        let listed = &all[0];
        client
            .put(&listed.key, "replaced", &listed.context, Consistency::Quorum)
            .await
            .unwrap();
        let read = client.get(&listed.key, Consistency::Quorum).await.unwrap();
        assert_eq!(read.values.len(), 1, "no sibling: the context covered the value");

        // The CLI follows pages (of 7) by itself and stops at --limit.
        let cluster_dir = cluster.cluster_dir();
        let node = cluster.addrs[0].to_string();
        let cli = move |args: &[&str]| {
            let output = Command::new(SHOAL)
                .args(args)
                .args(["--node", &node, "--cluster-dir", cluster_dir.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        let printed = tokio::task::spawn_blocking({
            let cli = cli.clone();
            move || cli(&["list", "--prefix", "user:", "--page-size", "7"])
        })
        .await
        .unwrap();
        assert_eq!(printed.lines().count(), 119);
        assert_eq!(printed.lines().nth(7), Some(key(8).as_str()));
        let printed = tokio::task::spawn_blocking({
            let cli = cli.clone();
            move || {
                cli(&[
                    "list", "--start", "user:100", "--end", "user:103", "--values", "--json",
                ])
            }
        })
        .await
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&printed).unwrap();
        let entries = json.as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1]["key"], "user:101");
        assert_eq!(entries[1]["values"][0]["value"], "v101");
        assert!(entries[1]["context"].as_str().is_some_and(|c| !c.is_empty()));
        let printed = tokio::task::spawn_blocking(move || cli(&["list", "--limit", "3"]))
            .await
            .unwrap();
        assert_eq!(printed, "user:000\nuser:001\nuser:002\n");

        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
