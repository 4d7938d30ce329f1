//! Revocation: `shoal cluster revoke` puts a certificate on the cluster's
//! deny list, and every node refuses it within seconds, on connections
//! already open and on new ones, and remembers it across a restart.

mod common;

use common::raw::{ask, connect_as, get};
use common::{run, shoal_cli, succeeded};
use shoal::net::revocation::{CLOSE_CERTIFICATE, REVOKED_KEY};
use shoal::node::{NodeHandle, NodeOptions};
use shoal::proto::message::PROTOCOL_VERSION;
use shoal::proto::{ClientResponse, RequestError, Response};
use shoal::{Client, ClientError, Consistency, Context, Credentials};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

/// What the issue promises: refused within 5 s.
const WITHIN: Duration = Duration::from_secs(5);

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Issues a certificate (role `role`) into `dir/name`; returns its serial
/// as the command printed it.
fn issue(dir: &Path, name: &str, role: &str) -> String {
    let (ops, out) = (dir.join("ops"), dir.join(name));
    let printed = if role == "node" {
        succeeded(shoal_cli(&[
            "cluster",
            "issue-node",
            "--dir",
            path(&ops),
            "--out",
            path(&out),
        ]))
    } else {
        succeeded(shoal_cli(&[
            "cluster",
            "issue-client",
            name,
            "--role",
            role,
            "--dir",
            path(&ops),
            "--out",
            path(&out),
        ]))
    };
    let serial = printed
        .split("serial ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    serial.trim().to_string()
}

/// Three nodes, each started from its own issued directory, plus the
/// certificates of an admin, an application and a second application.
struct Setup {
    dir: tempfile::TempDir,
    nodes: Vec<Option<NodeHandle>>,
    addrs: Vec<SocketAddr>,
    serials: std::collections::BTreeMap<String, String>,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        shoal::net::tls::init_cluster_dir(&dir.path().join("ops")).unwrap();
        let mut serials = std::collections::BTreeMap::new();
        for (name, role) in [
            ("n0", "node"),
            ("n1", "node"),
            ("n2", "node"),
            ("admin", "admin"),
            ("app", "readwrite"),
            ("other", "readwrite"),
        ] {
            serials.insert(name.to_string(), issue(dir.path(), name, role));
        }
        Setup {
            dir,
            nodes: Vec::new(),
            addrs: Vec::new(),
            serials,
        }
    }

    fn certs(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn credentials(&self, name: &str) -> Credentials {
        Credentials::from_cluster_dir(&self.certs(name)).unwrap()
    }

    async fn start(&mut self, i: usize) {
        let listen = self.addrs.get(i).copied().unwrap_or(([127, 0, 0, 1], 0).into());
        let mut options = NodeOptions::new(
            self.dir.path().join(format!("data{i}")),
            listen,
            self.certs(&format!("n{i}")),
        );
        options.seeds = self.addrs.iter().copied().filter(|a| *a != listen).collect();
        let node = shoal::node::start(options).await.unwrap();
        if i == self.addrs.len() {
            self.addrs.push(node.addr());
            self.nodes.push(Some(node));
        } else {
            self.nodes[i] = Some(node);
        }
    }

    async fn start_all(&mut self) -> Client {
        for i in 0..3 {
            self.start(i).await;
        }
        let admin = Client::connect(&self.addrs, self.credentials("admin"))
            .await
            .unwrap();
        admin
            .admin()
            .wait_until_members_up(&self.addrs, 3, Duration::from_secs(30))
            .await
            .unwrap();
        admin
    }

    async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().shutdown().await.unwrap();
    }

    /// Runs `shoal cluster revoke ARGS` as the admin against node 0.
    async fn revoke(&self, args: &[&str]) -> String {
        let mut command = vec!["cluster", "revoke"];
        command.extend_from_slice(args);
        let node = self.addrs[0].to_string();
        let admin = self.certs("admin");
        command.extend_from_slice(&["--node", &node, "--cluster-dir", path(&admin)]);
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            shoal_cli(&args)
        })
        .await
        .unwrap();
        succeeded(output)
    }

    /// A raw connection to node `i` presenting `name`'s certificate.
    async fn raw(&self, name: &str, i: usize) -> (quinn::Endpoint, quinn::Connection) {
        let node = self.nodes[i].as_ref().unwrap();
        connect_as(&self.credentials(name), PROTOCOL_VERSION, node)
            .await
            .unwrap()
    }
}

/// Why the node closed `connection`, if it did within `limit`.
async fn closed_within(connection: &quinn::Connection, limit: Duration) -> Option<String> {
    let error = tokio::time::timeout(limit, connection.closed()).await.ok()?;
    match error {
        quinn::ConnectionError::ApplicationClosed(close) if close.error_code == CLOSE_CERTIFICATE.into() => {
            Some(String::from_utf8_lossy(&close.reason).into_owned())
        }
        other => Some(format!("closed otherwise: {other}")),
    }
}

fn found(response: Result<Response, String>) -> bool {
    matches!(response, Ok(Response::Data(ClientResponse::Found { .. })))
}

#[test]
fn a_revoked_client_is_refused_within_seconds_on_open_and_new_connections_and_after_a_restart() {
    let mut setup = Setup::new();
    run(Duration::from_secs(120), async {
        let admin = setup.start_all().await;
        let app = Client::connect(&setup.addrs, setup.credentials("app"))
            .await
            .unwrap();
        app.put("k", "v", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        // An open connection of the application to every node, in use.
        let mut open = Vec::new();
        for i in 0..3 {
            let (endpoint, connection) = setup.raw("app", i).await;
            assert!(
                found(ask(&connection, &get(b"k")).await),
                "node {i} serves the app"
            );
            open.push((endpoint, connection));
        }

        let app_cert = setup.certs("app").join("cert.pem");
        let printed = setup.revoke(&["--cert", path(&app_cert)]).await;
        let serial = &setup.serials["app"];
        assert!(printed.contains(&format!("revoked {serial}")), "{printed}");
        let revoked_at = Instant::now();

        // Every node closes the open connections, naming the reason.
        for (i, (_, connection)) in open.iter().enumerate() {
            let why = closed_within(connection, WITHIN.saturating_sub(revoked_at.elapsed())).await;
            assert_eq!(why.as_deref(), Some("certificate revoked"), "node {i}");
        }
        // A new connection is closed right after its handshake; the
        // client library reports why.
        for i in 0..3 {
            let (_endpoint, connection) = setup.raw("app", i).await;
            assert!(
                !found(ask(&connection, &get(b"k")).await),
                "node {i} served a revoked client"
            );
            let why = closed_within(&connection, Duration::from_secs(1)).await;
            assert_eq!(why.as_deref(), Some("certificate revoked"), "node {i}");
        }
        let refused = app.get("k", Consistency::One).await.unwrap_err();
        assert!(refused.to_string().contains("certificate revoked"), "{refused}");
        app.close().await;

        // Others are untouched, and the list says who is revoked.
        let other = Client::connect(&setup.addrs, setup.credentials("other"))
            .await
            .unwrap();
        assert_eq!(
            other.get("k", Consistency::All).await.unwrap().values[0].value,
            &b"v"[..]
        );
        // Only admins touch the list: an application cannot un-revoke.
        for refused in [
            other
                .put(REVOKED_KEY, b"", &Context::empty(), Consistency::One)
                .await,
            other
                .get(REVOKED_KEY, Consistency::One)
                .await
                .map(|read| read.context),
        ] {
            assert!(
                matches!(refused, Err(ClientError::Request(RequestError::Forbidden { ref needed, .. })) if needed == "admin"),
                "{refused:?}"
            );
        }
        other.close().await;
        let list = admin.admin().revoked().await.unwrap();
        assert_eq!(list.revoked.keys().collect::<Vec<_>>(), [serial]);
        let node = setup.addrs[0].to_string();
        let admin_dir = setup.certs("admin");
        let listed = succeeded(shoal_cli(&[
            "cluster",
            "revoked",
            "--node",
            &node,
            "--cluster-dir",
            path(&admin_dir),
        ]));
        assert!(listed.starts_with(serial.as_str()), "{listed}");
        admin.close().await;

        // A node restarted alone (it cannot read the list at QUORUM) still
        // refuses the certificate from its first connection: it kept a copy.
        for i in 0..3 {
            setup.stop(i).await;
        }
        setup.start(0).await;
        let (_endpoint, connection) = setup.raw("app", 0).await;
        assert!(!found(ask(&connection, &get(b"k")).await));
        let why = closed_within(&connection, Duration::from_secs(1)).await;
        assert_eq!(why.as_deref(), Some("certificate revoked"));
        let (_endpoint, connection) = setup.raw("other", 0).await;
        assert!(
            closed_within(&connection, Duration::from_millis(500))
                .await
                .is_none(),
            "a certificate that was not revoked is served"
        );
        setup.stop(0).await;
    });
}

#[test]
fn a_revoked_node_is_cut_off_from_its_peers() {
    let mut setup = Setup::new();
    run(Duration::from_secs(120), async {
        let admin = setup.start_all().await;
        let victim = setup.nodes[2].as_ref().unwrap().id();
        let serial = setup.serials["n2"].clone();
        // Given as the command line may print it elsewhere: with colons.
        let colons: Vec<&str> = (0..serial.len()).step_by(2).map(|i| &serial[i..i + 2]).collect();
        setup.revoke(&[&colons.join(":").to_uppercase()]).await;

        // The others refuse its connections and stop talking to it: their
        // failure detector soon sees it down.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut down_on = 0;
            for addr in &setup.addrs[..2] {
                let report = admin.admin().status(*addr).await.unwrap();
                let up = report.members.iter().any(|m| m.node == victim && m.up);
                if !up {
                    down_on += 1;
                }
            }
            if down_on == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the revoked node is still up on its peers"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The revoked node's own connections to its peers are refused.
        let node2 = setup.certs("n2");
        let (_endpoint, connection) = {
            let node = setup.nodes[0].as_ref().unwrap();
            connect_as(
                &Credentials::from_cluster_dir(&node2).unwrap(),
                PROTOCOL_VERSION,
                node,
            )
            .await
            .unwrap()
        };
        let why = closed_within(&connection, Duration::from_secs(1)).await;
        assert_eq!(why.as_deref(), Some("certificate revoked"));
        admin.close().await;
        for i in 0..3 {
            setup.stop(i).await;
        }
    });
}
