//! Least privilege, first step: the CA key stays with the operator. `shoal
//! cluster issue-node` and `issue-client` write a directory with the CA
//! certificate and one signed certificate (its role inside) and key, and
//! no CA key; nodes and clients start from such directories.

mod common;

use common::{run, shoal_cli, succeeded};
use quinn::rustls::pki_types::CertificateDer;
use quinn::rustls::pki_types::pem::PemObject;
use shoal::node::NodeOptions;
use shoal::proto::message::AdminError;
use shoal::proto::{AdminRequest, Config, NodeId, RequestError};
use shoal::{Client, ClientError, Consistency, Context, Credentials};
use std::path::Path;

use std::time::Duration;

/// Whether the certificate in `dir` carries `role` in its SAN URI.
fn has_role(dir: &Path, role: &str) -> bool {
    let pem = std::fs::read(dir.join("cert.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let uri = format!("shoal:role:{role}");
    der.windows(uri.len()).any(|w| w == uri.as_bytes())
}

#[test]
fn nodes_and_clients_run_from_issued_directories_without_the_ca_key() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    let (node_dir, app_dir) = (tmp.path().join("n1-certs"), tmp.path().join("app-certs"));
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    succeeded(shoal_cli(&["cluster", "init", "--dir", &path(&ops)]));
    succeeded(shoal_cli(&[
        "cluster",
        "issue-node",
        "--dir",
        &path(&ops),
        "--out",
        &path(&node_dir),
    ]));
    let out = succeeded(shoal_cli(&[
        "cluster",
        "issue-client",
        "app",
        "--role",
        "readwrite",
        "--dir",
        &path(&ops),
        "--out",
        &path(&app_dir),
    ]));
    assert!(out.contains("readwrite"), "{out}");
    for dir in [&node_dir, &app_dir] {
        assert!(dir.join("ca.pem").exists() && dir.join("cert.pem").exists());
        assert!(
            !dir.join("ca.key").exists(),
            "no CA key leaves the operator's directory"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private to its owner");
        }
    }
    assert!(has_role(&node_dir, "node") && !has_role(&node_dir, "readwrite"));
    assert!(has_role(&app_dir, "readwrite"));

    // Issuing again into a directory that holds a certificate is refused,
    // and so is a client with the node role or an unknown one.
    assert!(
        !shoal_cli(&[
            "cluster",
            "issue-node",
            "--dir",
            &path(&ops),
            "--out",
            &path(&node_dir)
        ])
        .status
        .success()
    );
    let other = path(&tmp.path().join("other"));
    let as_node = shoal_cli(&[
        "cluster",
        "issue-client",
        "x",
        "--role",
        "node",
        "--dir",
        &path(&ops),
        "--out",
        &other,
    ]);
    assert!(!as_node.status.success());
    assert!(String::from_utf8_lossy(&as_node.stderr).contains("issue-node"));
    let unknown = shoal_cli(&[
        "cluster",
        "issue-client",
        "x",
        "--role",
        "root",
        "--dir",
        &path(&ops),
        "--out",
        &other,
    ]);
    assert!(!unknown.status.success());

    run(Duration::from_secs(60), async {
        let mut options = NodeOptions::new(
            tmp.path().join("data"),
            "127.0.0.1:0".parse().unwrap(),
            node_dir.clone(),
        );
        options.config = {
            let mut config = Config::default();
            config.replication = 1;
            config
        };
        let node = shoal::node::start(options).await.unwrap();
        let client = Client::connect(&[node.addr()], Credentials::from_cluster_dir(&app_dir).unwrap())
            .await
            .unwrap();
        client
            .put("k", "v", &Context::empty(), Consistency::One)
            .await
            .unwrap();
        let read = client.get("k", Consistency::One).await.unwrap();
        assert_eq!(read.values[0].value, &b"v"[..]);
        client.close().await;

        // A certificate issued by another CA is still refused.
        let stranger = tmp.path().join("stranger");
        shoal::net::tls::init_cluster_dir(&stranger).unwrap();
        let refused =
            Client::connect(&[node.addr()], Credentials::from_cluster_dir(&stranger).unwrap()).await;
        assert!(refused.is_err());
        node.shutdown().await.unwrap();
    });
}

fn issue(ops: &Path, out: &Path, role: &str) {
    let (ops, out) = (ops.to_str().unwrap(), out.to_str().unwrap());
    let args: Vec<&str> = match role {
        "node" => vec!["cluster", "issue-node", "--dir", ops, "--out", out],
        _ => vec![
            "cluster",
            "issue-client",
            "someone",
            "--role",
            role,
            "--dir",
            ops,
            "--out",
            out,
        ],
    };
    succeeded(shoal_cli(&args));
}

fn forbidden_data(error: &ClientError, needed: &str) -> bool {
    matches!(error, ClientError::Request(RequestError::Forbidden { needed: n, .. }) if n == needed)
}

fn forbidden_admin(error: &ClientError, needed: &str) -> bool {
    matches!(error, ClientError::Admin { reason: AdminError::Forbidden { needed: n, .. } } if n == needed)
}

/// Each role gets what it may do and a clear refusal, naming the role
/// needed, for the rest; a node certificate is no client, and a client
/// certificate is no peer.
#[test]
fn requests_are_served_by_the_role_in_the_clients_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    shoal::net::tls::init_cluster_dir(&ops).unwrap();
    for role in ["node", "admin", "readwrite", "readonly"] {
        issue(&ops, &tmp.path().join(role), role);
    }
    run(Duration::from_secs(60), async {
        let mut options = NodeOptions::new(
            tmp.path().join("data"),
            "127.0.0.1:0".parse().unwrap(),
            tmp.path().join("node"),
        );
        options.config = {
            let mut config = Config::default();
            config.replication = 1;
            config
        };
        let node = shoal::node::start(options).await.unwrap();
        let addr = node.addr();
        let seeds = [addr];
        let client = |role: &str| {
            Client::connect(
                &seeds,
                Credentials::from_cluster_dir(&tmp.path().join(role)).unwrap(),
            )
        };
        let remove = AdminRequest::RemoveNode { node: NodeId(42) };

        let writer = client("readwrite").await.unwrap();
        writer
            .put("k", "v", &Context::empty(), Consistency::One)
            .await
            .unwrap();
        let error = writer.admin().request(addr, remove.clone()).await.unwrap_err();
        assert!(forbidden_admin(&error, "admin"), "{error:?}");
        assert!(
            error.to_string().contains("readwrite") && error.to_string().contains("admin"),
            "{error}"
        );

        let reader = client("readonly").await.unwrap();
        assert_eq!(
            reader.get("k", Consistency::One).await.unwrap().values[0].value,
            &b"v"[..]
        );
        let error = reader
            .put("k", "w", &Context::empty(), Consistency::One)
            .await
            .unwrap_err();
        assert!(forbidden_data(&error, "readwrite"), "{error:?}");
        let error = reader
            .delete("k", &Context::empty(), Consistency::One)
            .await
            .unwrap_err();
        assert!(forbidden_data(&error, "readwrite"), "{error:?}");
        assert_eq!(reader.admin().status(addr).await.unwrap().members.len(), 1);
        // Nothing the refused requests asked for happened.
        assert_eq!(
            reader.get("k", Consistency::One).await.unwrap().values[0].value,
            &b"v"[..]
        );

        let admin = client("admin").await.unwrap();
        let error = admin.admin().request(addr, remove.clone()).await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Admin {
                    reason: AdminError::UnknownNode { .. }
                }
            ),
            "{error:?}"
        );
        admin
            .put("k2", "v", &Context::empty(), Consistency::One)
            .await
            .unwrap();

        // A node certificate may ask a node's status (what nodes gossip
        // anyway; a node's HTTP status page gathers its peers' with it),
        // and nothing else.
        let as_node = client("node").await.expect("status is served to nodes");
        let error = as_node.get("k", Consistency::One).await.unwrap_err();
        assert!(forbidden_data(&error, "readonly"), "{error:?}");
        let error = as_node
            .admin()
            .request(addr, AdminRequest::Leave)
            .await
            .unwrap_err();
        assert!(forbidden_admin(&error, "admin"), "{error:?}");
        as_node.close().await;

        // A node started with a client certificate does not become a peer.
        let mut intruder = NodeOptions::new(
            tmp.path().join("intruder"),
            "127.0.0.1:0".parse().unwrap(),
            tmp.path().join("readwrite"),
        );
        intruder.seeds = vec![addr];
        let intruder = shoal::node::start(intruder).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            admin.admin().status(addr).await.unwrap().members.len(),
            1,
            "no member joined"
        );
        intruder.shutdown().await.unwrap();
        for c in [writer, reader, admin] {
            c.close().await;
        }
        node.shutdown().await.unwrap();
    });
}

/// Nodes that each hold only their own issued certificate (role node) form
/// a cluster: they gossip, replicate and serve a readwrite client.
#[test]
fn nodes_with_issued_certificates_form_a_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    shoal::net::tls::init_cluster_dir(&ops).unwrap();
    for name in ["n1", "n2"] {
        issue(&ops, &tmp.path().join(name), "node");
    }
    issue(&ops, &tmp.path().join("app"), "readwrite");
    issue(&ops, &tmp.path().join("ops-client"), "admin");
    run(Duration::from_secs(60), async {
        let config = {
            let mut config = Config::default();
            config.replication = 2;
            config
        };
        let mut first = NodeOptions::new(
            tmp.path().join("d1"),
            "127.0.0.1:0".parse().unwrap(),
            tmp.path().join("n1"),
        );
        first.config = config.clone();
        let first = shoal::node::start(first).await.unwrap();
        let mut second = NodeOptions::new(
            tmp.path().join("d2"),
            "127.0.0.1:0".parse().unwrap(),
            tmp.path().join("n2"),
        );
        second.config = config;
        second.seeds = vec![first.addr()];
        let second = shoal::node::start(second).await.unwrap();
        let addrs = [first.addr(), second.addr()];
        let operator = Client::connect(
            &addrs,
            Credentials::from_cluster_dir(&tmp.path().join("ops-client")).unwrap(),
        )
        .await
        .unwrap();
        operator
            .admin()
            .wait_until_members_up(&addrs, 2, Duration::from_secs(20))
            .await
            .unwrap();
        let app = Client::connect(
            &addrs,
            Credentials::from_cluster_dir(&tmp.path().join("app")).unwrap(),
        )
        .await
        .unwrap();
        app.put("k", "v", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        for addr in addrs {
            let read = app.get_via(addr, "k", Consistency::One).await.unwrap();
            assert_eq!(read.values[0].value, &b"v"[..], "replicated to {addr}");
        }
        app.close().await;
        operator.close().await;
        second.shutdown().await.unwrap();
        first.shutdown().await.unwrap();
    });
}

/// A holder of a client certificate cannot pose as a node: clients (and
/// nodes' peer links) talk only to servers whose certificate is a node's.
#[test]
fn a_server_with_a_client_certificate_is_not_trusted_as_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    shoal::net::tls::init_cluster_dir(&ops).unwrap();
    issue(&ops, &tmp.path().join("impostor"), "readwrite");
    issue(&ops, &tmp.path().join("app"), "readwrite");
    run(Duration::from_secs(30), async {
        let impostor = Credentials::from_cluster_dir(&tmp.path().join("impostor")).unwrap();
        let server = impostor
            .server_config(shoal::net::tls::transport_config(16))
            .unwrap();
        let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
        let accepting = endpoint.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(incoming) = accepting.accept().await {
                if let Ok(connection) = incoming.await {
                    held.push(connection);
                }
            }
        });
        let app = Credentials::from_cluster_dir(&tmp.path().join("app")).unwrap();
        let error = Client::connect(&[endpoint.local_addr().unwrap()], app)
            .await
            .err()
            .expect("an impostor is not a node");
        assert!(
            matches!(&error, ClientError::Unreachable { last, .. } if last.contains("not a node")),
            "{error:?}"
        );
        endpoint.close(0u32.into(), b"done");
    });
}
