//! SWIM packets (the gossip codec and foca behind it) fed to a node whose
//! membership runs: whatever arrives, the node does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::proto::{Config, MemStore, Node, Time};

fuzz_target!(|data: &[u8]| {
    let mut node = Node::new(Config::default(), MemStore::new(), 7).expect("a valid config");
    node.start_membership(Time::ZERO, "127.0.0.1:7101".parse().unwrap(), &[]);
    node.handle_gossip(Time::from_micros(1_000), data);
    while node.poll_output().is_some() {}
});
