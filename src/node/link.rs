//! One outgoing link to a peer: a QUIC connection (re-established when it
//! fails, with backoff), one long-lived stream carrying peer messages in
//! order (batched into few writes), and datagrams for SWIM packets.

use crate::net::frame::encode_into;
use crate::net::tls::SERVER_NAME;
use crate::proto::message::PeerHello;
use crate::proto::{NodeId, PeerMessage};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most messages queued for one peer; more are dropped (the core copes).
const LINK_QUEUE: usize = 8192;
/// Most messages written to the stream in one go.
const WRITE_BATCH: usize = 256;
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
    pub(super) fn spawn(endpoint: quinn::Endpoint, addr: SocketAddr, me: NodeId) -> Link {
        let (queue, rx) = mpsc::channel(LINK_QUEUE);
        let task = tokio::spawn(run(endpoint, addr, me, rx));
        Link { queue, task }
    }

    pub(super) fn send_message(&self, message: PeerMessage) {
        let _ = self.queue.try_send(Outgoing::Message(message));
    }

    pub(super) fn send_gossip(&self, data: Bytes) {
        let _ = self.queue.try_send(Outgoing::Gossip(data));
    }
}

async fn run(endpoint: quinn::Endpoint, addr: SocketAddr, me: NodeId, mut rx: mpsc::Receiver<Outgoing>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connection = match connect(&endpoint, addr).await {
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
        match pump(&connection, me, &mut rx).await {
            Ok(()) => return, // the driver is gone
            Err(error) => tracing::debug!(%addr, %error, "peer link broke; reconnecting"),
        }
    }
}

async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr) -> Result<quinn::Connection, String> {
    let connecting = endpoint.connect(addr, SERVER_NAME).map_err(|e| e.to_string())?;
    connecting.await.map_err(|e| e.to_string())
}

/// Sends until the queue closes (Ok) or the connection fails (Err).
async fn pump(
    connection: &quinn::Connection,
    me: NodeId,
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
                Outgoing::Message(message) => encode_into(&mut buf, &message),
                Outgoing::Gossip(data) => {
                    // A SWIM packet lost here is like one lost on the wire.
                    let _ = connection.send_datagram(data);
                }
            }
        }
        if !buf.is_empty() {
            stream.write_all(&buf).await.map_err(|e| e.to_string())?;
            buf.clear();
        }
    }
}
