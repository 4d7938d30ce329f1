//! Client frames, both ways: requests a node reads and responses a client
//! reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::net::frame::{DEFAULT_MAX_FRAME, decode, decode_body};
use shoal::proto::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Request>(data, DEFAULT_MAX_FRAME);
    let _ = decode_body::<Request>(data, crc32fast::hash(data));
    let _ = decode_body::<Response>(data, crc32fast::hash(data));
});
