//! Networking: wire framing, frames on QUIC streams, and mutual TLS from
//! the cluster CA.

pub mod frame;
pub mod revocation;
pub mod s3;
pub mod stream;
pub mod tls;
pub mod tokens;
