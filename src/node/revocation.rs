//! Enforcing the deny list of revoked certificates (`net::revocation`).
//!
//! Every node reads the list record at QUORUM once a second through its
//! own core (R + W > N: a read that starts after the revocation was
//! acknowledged sees it), keeps the union of everything it has seen (the
//! list only grows: a certificate is never un-revoked, and an admin who
//! overwrites the record with something else removes nothing), and keeps
//! a copy in its data directory, so that a restarted node enforces the list
//! from its first connection. It refuses a connection whose certificate is
//! on the list right after the handshake, and closes connections already
//! open (client and peer, incoming and outgoing) as soon as their
//! certificate is listed or expires.

use super::Event;
use crate::net::revocation::{CLOSE_CERTIFICATE, REFRESH, REVOKED_KEY, RevocationList};
use crate::net::tls::PeerCertificate;
use crate::proto::{
    AdminRequest, AdminResponse, ClientRequest, ClientResponse, Consistency, Fanout, Request, Response,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// The node's copy of the list, in its data directory.
const FILE: &str = "revoked-certificates";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The list as this node knows it, shared with every connection.
pub(super) type Shared = watch::Sender<Arc<RevocationList>>;

/// The node's saved copy in `data_dir`; empty if there is none, and if it
/// cannot be read (with a warning: the next refresh restores it).
pub(super) fn load(data_dir: &Path) -> RevocationList {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => rmp_serde::from_slice(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), %error, "unreadable copy of the revocation list; refetching it");
            RevocationList::default()
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => RevocationList::default(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the copy of the revocation list");
            RevocationList::default()
        }
    }
}

/// Replaces the saved copy (written beside it, then renamed over it).
fn save(data_dir: &Path, list: &RevocationList) -> std::io::Result<()> {
    let path = data_dir.join(FILE);
    let temporary = data_dir.join(format!("{FILE}.new"));
    std::fs::write(&temporary, list.encode())?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, &path)
}

/// Reads the list from the cluster every [`REFRESH`] through the node's
/// own core, until the node stops.
pub(super) async fn refresh(events: mpsc::Sender<Event>, shared: Shared, data_dir: PathBuf) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Only a read that can succeed: one that fails counts as a quorum
        // failure, which operators watch (and alerts fire on).
        let Some(status) = ask(&events, Request::Admin(AdminRequest::Status)).await else {
            return; // the node has stopped
        };
        let Response::Admin(AdminResponse::Status(report)) = status else {
            continue;
        };
        let up = report.members.iter().filter(|m| m.up).count();
        if up < report.replication / 2 + 1 {
            continue;
        }
        let request = Request::Data(ClientRequest::Get {
            key: REVOKED_KEY.to_vec(),
            consistency: Consistency::Quorum,
            timeout_ms: Some(REFRESH.as_millis() as u32 * 2),
            fanout: Fanout::All,
        });
        let values = match ask(&events, request).await {
            Some(Response::Data(ClientResponse::Found { values, .. })) => values,
            Some(other) => {
                tracing::debug!(?other, "revocation list not read this time");
                continue;
            }
            None => return,
        };
        let (read, unreadable) = RevocationList::from_values(&values);
        if unreadable > 0 {
            tracing::warn!(
                unreadable,
                "revocation list record holds values that are not a list; ignored"
            );
        }
        let mut known = RevocationList::clone(&shared.borrow());
        if known.absorb(&read) {
            tracing::info!(revoked = known.revoked.len(), "revocation list grew");
            if let Err(error) = save(&data_dir, &known) {
                tracing::warn!(%error, "cannot save the revocation list; enforcing it in memory");
            }
            shared.send_replace(Arc::new(known));
        }
    }
}

/// Hands `request` to the node's core; its answer, or `None` once the
/// node has stopped.
async fn ask(events: &mpsc::Sender<Event>, request: Request) -> Option<Response> {
    let (reply, response) = oneshot::channel();
    events
        .send(Event::Request {
            request,
            reply: reply.into(),
        })
        .await
        .ok()?;
    response.await.ok()
}

/// Why a connection with `certificate` must close: returns once it is
/// revoked (by `list`) or expired.
pub(super) async fn until_invalid(
    certificate: &PeerCertificate,
    mut list: watch::Receiver<Arc<RevocationList>>,
) -> &'static str {
    let mut list_open = true;
    loop {
        if list.borrow_and_update().is_revoked(&certificate.serial) {
            return "certificate revoked";
        }
        let left = certificate.not_after.saturating_sub(unix_now() as i64);
        if left <= 0 {
            return "certificate expired";
        }
        // A long sleep is cut in days; the loop measures again.
        let nap = tokio::time::sleep(Duration::from_secs((left as u64).min(86_400)));
        tokio::select! {
            changed = list.changed(), if list_open => list_open = changed.is_ok(),
            () = nap => {}
        }
    }
}

/// Whether a connection may be served: logs and closes it if its
/// certificate is revoked.
pub(super) fn admit(
    connection: &quinn::Connection,
    certificate: &PeerCertificate,
    list: &RevocationList,
) -> bool {
    if !list.is_revoked(&certificate.serial) {
        return true;
    }
    tracing::info!(
        remote = %connection.remote_address(),
        serial = %certificate.serial,
        "connection refused: certificate revoked"
    );
    connection.close(CLOSE_CERTIFICATE.into(), b"certificate revoked");
    false
}

/// Closes `connection` when its certificate is revoked or expires.
pub(super) fn close_when_invalid(
    connection: quinn::Connection,
    certificate: PeerCertificate,
    list: watch::Receiver<Arc<RevocationList>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let why = until_invalid(&certificate, list).await;
        tracing::info!(
            remote = %connection.remote_address(),
            serial = %certificate.serial,
            why,
            "connection closed"
        );
        connection.close(CLOSE_CERTIFICATE.into(), why.as_bytes());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_copy_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), RevocationList::default());
        let saved = RevocationList {
            revoked: [("0a1b".to_string(), 42)].into_iter().collect(),
        };
        save(dir.path(), &saved).unwrap();
        assert_eq!(load(dir.path()), saved);
        std::fs::write(dir.path().join(FILE), b"junk").unwrap();
        assert_eq!(load(dir.path()), RevocationList::default());
    }

    fn certificate(serial: &str, not_after: i64) -> PeerCertificate {
        PeerCertificate {
            role: None,
            serial: serial.to_string(),
            not_after,
        }
    }

    #[tokio::test]
    async fn a_connection_ends_when_its_certificate_is_revoked_or_expires() {
        let now = unix_now() as i64;
        let shared: Shared = watch::Sender::new(Arc::default());
        // Already expired (a connection made just before expiry).
        let expired = certificate("aa", now - 1);
        assert_eq!(
            until_invalid(&expired, shared.subscribe()).await,
            "certificate expired"
        );
        // Valid for a year; revoked while open.
        let valid = certificate("bb", now + 365 * 86_400);
        let waiting = tokio::spawn({
            let list = shared.subscribe();
            async move { until_invalid(&valid, list).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        let mut list = RevocationList::default();
        list.revoked.insert("cc".to_string(), 1);
        shared.send_replace(Arc::new(list.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "another certificate's revocation ends nothing"
        );
        list.revoked.insert("bb".to_string(), 2);
        shared.send_replace(Arc::new(list));
        assert_eq!(waiting.await.unwrap(), "certificate revoked");
    }
}
