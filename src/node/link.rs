//! One outgoing link to a peer: a QUIC connection (re-established when it
//! fails, with backoff), one long-lived stream carrying peer messages in
//! order (batched into few writes), and datagrams for SWIM packets.
//!
//! A message larger than the peer accepts (`max_frame_bytes`, the same on
//! every node) is not sent: the peer would close the stream, and every
//! message queued behind it would be lost with it. The core treats it as a
//! lost message. Only merging concurrent siblings from several replicas
//! can make a state that large: no single write may (`max_state_bytes`).

use super::revocation;
use crate::net::frame::{HEADER_LEN, encode_into};
use crate::net::revocation::RevocationList;
use crate::net::stream::write_buffer;
use crate::net::tls::{PeerCertificate, Role, SERVER_NAME};
use crate::proto::message::PeerHello;
use crate::proto::{NodeId, PeerMessage};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The revoked certificates the node knows of.
type Revoked = watch::Receiver<Arc<RevocationList>>;

/// Most messages queued for one peer; more are dropped (the core copes).
const LINK_QUEUE: usize = 8192;
/// Most messages taken from the queue in one go.
const WRITE_BATCH: usize = 256;
/// Encoded bytes past which they are written to the stream before more are
/// encoded: small messages still go in few writes, while large ones (the
/// object gateway's 1 MiB blocks) are not all encoded into one buffer
/// while the stream waits for the peer.
const WRITE_BYTES: usize = 256 << 10;
/// Bytes reserved beyond a state's estimated size for the rest of its
/// message (the request id, placement and clock).
const STATE_SLACK: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(2);

enum Outgoing {
    Message(PeerMessage),
    Gossip(Bytes),
}

/// The sending side of a link; the task behind it does the I/O and ends
/// when the link is dropped.
pub(super) struct Link {
    queue: mpsc::Sender<Outgoing>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link {
    pub(super) fn spawn(
        endpoint: quinn::Endpoint,
        addr: SocketAddr,
        me: NodeId,
        max_frame: usize,
        revoked: Revoked,
    ) -> Link {
        let (queue, rx) = mpsc::channel(LINK_QUEUE);
        let task = tokio::spawn(run(endpoint, addr, me, max_frame, rx, revoked));
        Link { queue, task }
    }

    pub(super) fn send_message(&self, message: PeerMessage) {
        let _ = self.queue.try_send(Outgoing::Message(message));
    }

    pub(super) fn send_gossip(&self, data: Bytes) {
        let _ = self.queue.try_send(Outgoing::Gossip(data));
    }
}

async fn run(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    me: NodeId,
    max_frame: usize,
    mut rx: mpsc::Receiver<Outgoing>,
    revoked: Revoked,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connection = match connect(&endpoint, addr, &revoked).await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::debug!(%addr, %error, "peer unreachable");
                // Drop what is queued: stale messages help nobody, and the
                // core retries what matters.
                while rx.try_recv().is_ok() {}
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (connection, certificate) = connection;
        // A peer whose certificate is revoked or expires gets nothing more.
        let sent = tokio::select! {
            sent = pump(&connection, me, max_frame, &mut rx) => sent,
            why = revocation::until_invalid(&certificate, revoked.clone()) => {
                connection.close(crate::net::revocation::CLOSE_CERTIFICATE.into(), why.as_bytes());
                Err(format!("{why} (serial {})", certificate.serial))
            }
        };
        match sent {
            Ok(()) => return, // the driver is gone
            Err(error) => tracing::debug!(%addr, %error, "peer link broke; reconnecting"),
        }
    }
}

/// Appends `message`'s frame to `out` if its body is at most `max_frame`
/// bytes (what the peer accepts); otherwise leaves `out` as it was and
/// logs a warning.
fn encode_within(out: &mut Vec<u8>, message: &PeerMessage, max_frame: usize) {
    let start = out.len();
    // Room for a large state first: a buffer grown while encoding it would
    // copy everything encoded so far (a whole 1 MiB object block, as the
    // fields after the state are written).
    if let PeerMessage::ReplicaPut { key, object, .. } | PeerMessage::HintedPut { key, object, .. } = message
    {
        out.reserve(HEADER_LEN + crate::proto::store::state_bytes(key, object) as usize + STATE_SLACK);
    }
    encode_into(out, message);
    let body = out.len() - start - HEADER_LEN;
    if body > max_frame {
        out.truncate(start);
        tracing::warn!(
            kind = message.kind(),
            bytes = body,
            max_frame_bytes = max_frame,
            "peer message larger than a peer accepts; not sent (siblings merged from several \
             replicas may outgrow max_state_bytes)"
        );
    }
}

/// A connection to the node at `addr`, and its certificate: refused if the
/// certificate is not a node's or is revoked.
async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    revoked: &Revoked,
) -> Result<(quinn::Connection, PeerCertificate), String> {
    let connecting = endpoint.connect(addr, SERVER_NAME).map_err(|e| e.to_string())?;
    let connection = connecting.await.map_err(|e| e.to_string())?;
    let certificate = PeerCertificate::of_connection(&connection);
    let Some(certificate) = certificate.filter(|c| matches!(c.role, None | Some(Role::Node))) else {
        connection.close(0u32.into(), b"not a node");
        return Err(format!("{addr} presented a certificate that is not a node's"));
    };
    if revoked.borrow().is_revoked(&certificate.serial) {
        connection.close(
            crate::net::revocation::CLOSE_CERTIFICATE.into(),
            b"certificate revoked",
        );
        return Err(format!(
            "{addr} presented a revoked certificate (serial {})",
            certificate.serial
        ));
    }
    Ok((connection, certificate))
}

/// Sends until the queue closes (Ok) or the connection fails (Err).
async fn pump(
    connection: &quinn::Connection,
    me: NodeId,
    max_frame: usize,
    rx: &mut mpsc::Receiver<Outgoing>,
) -> Result<(), String> {
    let mut stream = connection.open_uni().await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    encode_into(&mut buf, &PeerHello { node: me });
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        if rx.recv_many(&mut batch, WRITE_BATCH).await == 0 {
            return Ok(());
        }
        for outgoing in batch.drain(..) {
            match outgoing {
                Outgoing::Message(message) => encode_within(&mut buf, &message, max_frame),
                Outgoing::Gossip(data) => {
                    // A SWIM packet lost here is like one lost on the wire.
                    let _ = connection.send_datagram(data);
                }
            }
            if buf.len() >= WRITE_BYTES {
                write_buffer(&mut stream, &mut buf)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        if !buf.is_empty() {
            write_buffer(&mut stream, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::stream::read_frame;
    use crate::net::tls::{Credentials, init_cluster_dir, transport_config};
    use crate::proto::message::KeyState;

    fn ack(batch: u64) -> PeerMessage {
        PeerMessage::PushAck {
            batch,
            result: Ok(()),
        }
    }

    #[tokio::test]
    async fn a_message_larger_than_a_peer_accepts_is_skipped_and_the_link_carries_on() {
        const MAX_FRAME: usize = 1000;
        let dir = tempfile::tempdir().unwrap();
        init_cluster_dir(dir.path()).unwrap();
        let credentials = Credentials::from_cluster_dir(dir.path()).unwrap();
        let transport = transport_config(16);
        let server = quinn::Endpoint::server(
            credentials.server_config(transport.clone()).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(credentials.client_config(transport).unwrap());

        let link = Link::spawn(
            client.clone(),
            server.local_addr().unwrap(),
            NodeId(7),
            MAX_FRAME,
            watch::Sender::new(Arc::default()).subscribe(),
        );
        let too_big = PeerMessage::Push {
            batch: 2,
            states: vec![KeyState {
                key: vec![b'k'; 2 * MAX_FRAME],
                object: Default::default(),
            }],
        };
        link.send_message(ack(1));
        link.send_message(too_big);
        link.send_message(ack(3));

        let received = tokio::time::timeout(Duration::from_secs(10), async {
            let connection = server.accept().await.unwrap().await.unwrap();
            let mut recv = connection.accept_uni().await.unwrap();
            let hello: PeerHello = read_frame(&mut recv, MAX_FRAME).await.unwrap().unwrap();
            assert_eq!(hello.node, NodeId(7));
            let mut batches = Vec::new();
            for _ in 0..2 {
                // A frame over MAX_FRAME would fail here, as it does on a node.
                match read_frame::<PeerMessage>(&mut recv, MAX_FRAME).await {
                    Ok(Some(PeerMessage::PushAck { batch, .. })) => batches.push(batch),
                    other => panic!("expected an acknowledgement, got {other:?}"),
                }
            }
            batches
        })
        .await
        .expect("both small messages arrive within 10 s");
        assert_eq!(
            received,
            vec![1, 3],
            "the one too large is skipped, the rest arrive in order"
        );
        drop(link);
        client.close(0u32.into(), b"done");
        server.close(0u32.into(), b"done");
    }
}
