//! The status page in a real browser: headless Chromium loads the page of
//! a 3-node cluster, a node is stopped, and the page shows it down. A
//! screenshot is kept at `target/tmp/status-page.png`. Skipped, with a
//! message, where Chromium is missing (unless SHOAL_REQUIRE_CHROMIUM is
//! set, as CI does).

mod common;

use common::{TestCluster, run};
use shoal::net::tls::Role;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(|name| {
            let found = Command::new("which").arg(name).output().ok()?;
            let path = String::from_utf8(found.stdout).ok()?;
            found.status.success().then(|| PathBuf::from(path.trim()))
        })
}

/// Runs headless Chromium on `url` with `action` (`--dump-dom` or
/// `--screenshot=PATH`), letting the page's script run for 6 s of its time.
async fn browse(browser: &Path, url: &str, action: &str, profile: &Path) -> String {
    let args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-proxy-server",
        "--no-first-run",
        "--window-size=1280,720",
        "--virtual-time-budget=6000",
        &format!("--user-data-dir={}", profile.display()),
        action,
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let browser = browser.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg(browser)
            .args(args)
            .output()
            .expect("chromium runs")
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether the page's row of `node` says it is `up`.
fn row_says(dom: &str, node: &str, up: bool) -> bool {
    dom.contains(&format!("<tr data-node=\"{node}\" data-up=\"{up}\">"))
}

#[test]
fn the_status_page_shows_members_and_a_stopped_node_down() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("SHOAL_REQUIRE_CHROMIUM").is_none(),
            "Chromium is required (SHOAL_REQUIRE_CHROMIUM is set)"
        );
        eprintln!("SKIPPED the browser test: Chromium is not installed (Debian: apt-get install chromium)");
        return;
    };
    run(Duration::from_secs(180), async {
        let mut cluster = TestCluster::start_with_http(3, true).await.unwrap();
        let admin = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let (_, token) = admin.admin().create_token("page", Role::ReadOnly).await.unwrap();
        let url = format!("http://{}/#token={token}", cluster.http_addr(0).unwrap());
        let profile = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..3).map(|i| cluster.id(i).unwrap().to_string()).collect();

        let dom = browse(&browser, &url, "--dump-dom", profile.path()).await;
        for id in &ids {
            assert!(row_says(&dom, id, true), "node {id} shown up:\n{dom}");
        }
        assert!(dom.contains("3 members, 3 up"), "{dom}");

        cluster.stop(2).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let report = admin.admin().status(cluster.addrs[0]).await.unwrap();
            if report
                .members
                .iter()
                .any(|m| m.node.to_string() == ids[2] && !m.up)
            {
                break;
            }
            assert!(Instant::now() < deadline, "node 0 never saw node 2 down");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let dom = browse(&browser, &url, "--dump-dom", profile.path()).await;
        assert!(row_says(&dom, &ids[2], false), "node 2 shown down:\n{dom}");
        assert!(
            row_says(&dom, &ids[0], true) && row_says(&dom, &ids[1], true),
            "{dom}"
        );
        assert!(dom.contains("3 members, 2 up"), "{dom}");

        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
        let _ = std::fs::remove_file(&shot);
        browse(
            &browser,
            &url,
            &format!("--screenshot={}", shot.display()),
            profile.path(),
        )
        .await;
        let png = std::fs::read(&shot).expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        eprintln!("status page screenshot: {}", shot.display());
        admin.close().await;
        cluster.shutdown().await.unwrap();
    });
}
