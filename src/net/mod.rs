//! Networking: the wire framing every peer and client message uses.
//!
//! The QUIC transport and TLS come with the production driver.

pub mod frame;
