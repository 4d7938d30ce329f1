//! A single real node and raw QUIC connections to it, for tests of what
//! the node refuses (limits, certificates, protocol versions).

use shoal::net::stream::{read_frame, write_frame};
use shoal::net::tls::{Credentials, SERVER_NAME, init_cluster_dir, transport_config};
use shoal::node::{Limits, NodeHandle, NodeOptions};
use shoal::proto::message::{PROTOCOL_VERSION, Tagged};
use shoal::proto::{ClientRequest, ClientResponse, Config, Consistency, Context, Fanout, Request, Response};
use std::path::Path;
use std::time::Duration;

/// Starts one node (N=1) with `limits` in `dir`, with a new cluster CA.
pub async fn start(dir: &Path, limits: Limits) -> NodeHandle {
    init_cluster_dir(&dir.join("cluster")).unwrap();
    let config = {
        let mut cfg = Config::default();
        cfg.replication = 1;
        cfg
    };
    let mut options = NodeOptions::new(
        dir.join("data"),
        "127.0.0.1:0".parse().unwrap(),
        dir.join("cluster"),
    );
    options.config = config;
    options.limits = limits;
    shoal::node::start(options).await.unwrap()
}

/// A QUIC connection with this cluster's client certificate.
pub async fn connect(dir: &Path, node: &NodeHandle) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    let credentials = Credentials::from_cluster_dir(&dir.join("cluster")).unwrap();
    connect_as(&credentials, PROTOCOL_VERSION, node).await
}

/// A QUIC connection presenting `credentials` and announcing protocol
/// `version`.
pub async fn connect_as(
    credentials: &Credentials,
    version: u16,
    node: &NodeHandle,
) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    let config = credentials
        .client_config_speaking(transport_config(64), version)
        .unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connecting = endpoint
        .connect(node.addr(), SERVER_NAME)
        .map_err(|e| e.to_string())?;
    let connection = connecting.await.map_err(|e| e.to_string())?;
    Ok((endpoint, connection))
}

pub fn get(key: &[u8]) -> Request {
    Request::Data(ClientRequest::Get {
        key: key.to_vec(),
        consistency: Consistency::One,
        timeout_ms: None,
        fanout: Fanout::All,
    })
}

pub fn put(key: &[u8], value: &[u8]) -> Request {
    Request::Data(ClientRequest::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency: Consistency::One,
        timeout_ms: None,
        sloppy_quorum: true,
        ttl_ms: None,
    })
}

/// The values `connection` reads for `key`.
pub async fn values(connection: &quinn::Connection, key: &[u8]) -> Vec<Vec<u8>> {
    match ask(connection, &get(key)).await {
        Ok(Response::Data(ClientResponse::Found { values, .. })) => {
            values.into_iter().map(|v| v.value.to_vec()).collect()
        }
        other => panic!("{other:?}"),
    }
}

/// Sends `request` on a new stream of `connection`; the answer, or why none.
pub async fn ask(connection: &quinn::Connection, request: &Request) -> Result<Response, String> {
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    write_frame(&mut send, &Tagged { id: 7, body: request })
        .await
        .map_err(|e| e.to_string())?;
    let _ = send.finish();
    match read_frame::<Tagged<Response>>(&mut recv, 1 << 20).await {
        Ok(Some(Tagged { id: 7, body })) => Ok(body),
        Ok(Some(Tagged { id, .. })) => Err(format!("answer to request {id}, not 7")),
        Ok(None) => Err("stream ended without an answer".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Asks until the node serves requests (it knows its own ring).
pub async fn until_ready(connection: &quinn::Connection) {
    for _ in 0..100 {
        if let Ok(Response::Data(ClientResponse::Found { .. })) = ask(connection, &get(b"k")).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node never served a get");
}
