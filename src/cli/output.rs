//! How commands print their results.

use anyhow::Result;
use shoal::ReadResult;
use shoal::proto::{NodeId, Stats, StatusReport};

/// Prints a read: each sibling on a line, then the context.
pub fn read(read: &ReadResult, json: bool) -> Result<()> {
    if json {
        let values: Vec<serde_json::Value> = read
            .values
            .iter()
            .map(|v| {
                serde_json::json!({
                    "value": String::from_utf8_lossy(&v.value),
                    "timestamp_ms": v.timestamp_ms,
                })
            })
            .collect();
        let out = serde_json::json!({ "values": values, "context": read.context.to_string() });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if read.values.is_empty() {
        println!("(not found)");
    }
    for value in &read.values {
        println!("{}", String::from_utf8_lossy(&value.value));
    }
    if read.values.len() > 1 {
        println!(
            "({} siblings: resolve with a put passing the context)",
            read.values.len()
        );
    }
    println!("context: {}", read.context);
    Ok(())
}

/// Prints a status report, with each live member's own counters.
pub fn status(report: &StatusReport, counters: &[(NodeId, Option<Stats>)], json: bool) -> Result<()> {
    if json {
        let counters: serde_json::Map<String, serde_json::Value> = counters
            .iter()
            .map(|(node, stats)| (node.to_string(), serde_json::to_value(stats).unwrap_or_default()))
            .collect();
        let mut out = serde_json::to_value(report)?;
        out["counters"] = serde_json::Value::Object(counters);
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "node {} (N={}), {} operations in flight",
        report.node, report.replication, report.in_flight
    );
    println!(
        "{:<16}  {:<21}  {:<7}  {:<5}  {:>6}  {:>8}  {:>8}  {:>8}  {:>10}",
        "NODE", "ADDRESS", "STATUS", "UP", "RING%", "REQUESTS", "FORWARDS", "QFAILS", "REPLICAOPS"
    );
    for member in &report.members {
        let stats = counters
            .iter()
            .find(|(n, _)| *n == member.node)
            .and_then(|(_, s)| *s);
        let cell = |f: fn(&Stats) -> u64| stats.map(|s| f(&s).to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<16}  {:<21}  {:<7}  {:<5}  {:>6.1}  {:>8}  {:>8}  {:>8}  {:>10}",
            member.node.to_string(),
            member.addr.to_string(),
            member.status.to_string(),
            if member.up { "up" } else { "down" },
            member.ownership * 100.0,
            cell(|s| s.requests),
            cell(|s| s.forwards),
            cell(|s| s.quorum_failures),
            cell(|s| s.replica_ops),
        );
    }
    Ok(())
}
