//! How commands print their results.

use anyhow::{Context, Result};
use shoal::ReadResult;
use shoal::proto::{NodeId, StatusReport};
use std::io::Write;
use std::path::Path;

/// Prints a read: each sibling on a line, then the context.
pub fn read(read: &ReadResult, json: bool) -> Result<()> {
    if json {
        let out =
            serde_json::json!({ "values": values_json(&read.values), "context": read.context.to_string() });
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

/// Prints one change a watch saw: as `get` prints a read, or as one line
/// of JSON; flushed at once, for a pipe.
pub fn change(read: &ReadResult, json: bool) -> Result<()> {
    if json {
        let out =
            serde_json::json!({ "values": values_json(&read.values), "context": read.context.to_string() });
        println!("{out}");
    } else {
        self::read(read, false)?;
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// Writes a read's one value as raw bytes to `path` (standard output for
/// `-`), and its context to standard output (standard error when the
/// value went there).
pub fn raw(read: &ReadResult, path: &Path) -> Result<()> {
    let value = match read.values.as_slice() {
        [] => anyhow::bail!("the key was not found"),
        [one] => &one.value,
        siblings => anyhow::bail!(
            "the key has {} siblings: read them with --json (or plain get), or resolve them with a put",
            siblings.len()
        ),
    };
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(value)?;
        out.flush()?;
        eprintln!("context: {}", read.context);
    } else {
        std::fs::write(path, value).with_context(|| format!("writing {}", path.display()))?;
        println!("context: {}", read.context);
    }
    Ok(())
}

/// Prints a listing page by page, up to `limit` keys: a key per line
/// (then its values, indented, with --values), or one JSON array.
pub async fn listing(
    client: &shoal::Client,
    options: shoal::ListOptions,
    limit: u64,
    json: bool,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        write!(out, "[")?;
    }
    let mut printed = 0u64;
    let mut options = Some(options);
    while let Some(these) = options.take().filter(|_| printed < limit) {
        let page = client.list(&these).await?;
        for listed in page
            .keys
            .iter()
            .take((limit - printed).min(usize::MAX as u64) as usize)
        {
            if json {
                let separator = if printed == 0 { "\n  " } else { ",\n  " };
                write!(out, "{separator}{}", serde_json::to_string(&listed_json(listed))?)?;
            } else {
                writeln!(out, "{}", String::from_utf8_lossy(&listed.key))?;
                for value in &listed.values {
                    writeln!(out, "    {}", String::from_utf8_lossy(&value.value))?;
                }
            }
            printed += 1;
        }
        out.flush()?;
        options = page.next_options(&these);
    }
    if json {
        writeln!(out, "{}]", if printed == 0 { "" } else { "\n" })?;
    }
    Ok(())
}

/// A listed key as JSON: `key` (or `key_hex` when not UTF-8), `values`
/// as `get --json` prints them (only with --values), `context`.
fn listed_json(listed: &shoal::ListedKey) -> serde_json::Value {
    let mut entry = text_or_hex("key", &listed.key);
    entry["values"] = values_json(&listed.values).into();
    entry["context"] = listed.context.to_string().into();
    entry
}

/// Siblings as `get --json` prints them: `value` (or `value_hex`) and
/// `timestamp_ms`.
fn values_json(values: &[shoal::proto::Value]) -> Vec<serde_json::Value> {
    values
        .iter()
        .map(|v| {
            let mut value = text_or_hex("value", &v.value);
            value["timestamp_ms"] = v.timestamp_ms.into();
            value
        })
        .collect()
}

/// `{name: text}` for UTF-8 bytes, else `{name_hex: hex}`.
fn text_or_hex(name: &str, bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::json!({ name: text }),
        Err(_) => serde_json::json!({ format!("{name}_hex"): hex(bytes) }),
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints a status report, with each live member's own counters.
pub fn status(report: &StatusReport, members: &[(NodeId, Option<StatusReport>)], json: bool) -> Result<()> {
    if json {
        let out = shoal::node::status_json(report, members)?;
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "node {} (N={}), {} operations in flight",
        report.node, report.replication, report.in_flight
    );
    println!(
        "{:<16}  {:<21}  {:<7}  {:<7}  {:>6}  {:>9}  {:>8}  {:>6}  {:>7}  {:>8}  {:>8}  {:>7}  {:<14}",
        "NODE",
        "ADDRESS",
        "STATUS",
        "UP",
        "RING%",
        "KEYS",
        "REQUESTS",
        "QFAILS",
        "HINTS",
        "REPLAYED",
        "RREPAIRS",
        "AEKEYS",
        "MOVING"
    );
    for member in &report.members {
        let own = members
            .iter()
            .find(|(n, _)| *n == member.node)
            .and_then(|(_, r)| r.as_ref());
        let cell =
            |f: &dyn Fn(&StatusReport) -> u64| own.map(|r| f(r).to_string()).unwrap_or_else(|| "-".into());
        let moving = own
            .and_then(|r| r.streaming)
            .map(|p| {
                let what = if p.leaving { "out" } else { "in" };
                match p.unconfirmed {
                    0 => format!("{what} {}/{}", p.ranges_done, p.ranges),
                    n => format!("{what} {}/{} wait {n}", p.ranges_done, p.ranges),
                }
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16}  {:<21}  {:<7}  {:<7}  {:>6.1}  {:>9}  {:>8}  {:>6}  {:>7}  {:>8}  {:>8}  {:>7}  {:<14}",
            member.node.to_string(),
            member.addr.to_string(),
            member.status.to_string(),
            match (member.up, member.storage_failed) {
                (true, false) => "up",
                (true, true) => "up ro",
                (false, false) => "down",
                (false, true) => "down ro",
            },
            member.ownership * 100.0,
            cell(&|r| r.keys),
            cell(&|r| r.stats.requests),
            cell(&|r| r.stats.quorum_failures),
            cell(&|r| r.hints.iter().map(|h| h.count).sum()),
            cell(&|r| r.stats.hints_replayed),
            cell(&|r| r.stats.read_repairs),
            cell(&|r| r.stats.ae_keys_repaired),
            moving,
        );
    }
    println!(
        "HINTS: hints this node holds for others; REPLAYED: hints it delivered; RREPAIRS: read repairs;"
    );
    println!("AEKEYS: keys anti-entropy repaired here; MOVING: ranges streamed in (joining) or handed");
    println!("off (leaving) of all to move; 'wait N': N replicas of those ranges have not yet confirmed");
    println!("they know of the move, and nothing moves until enough do (check that they are reachable).");
    println!("'ro': the member's storage failed (full or failing disk); it serves reads, takes no writes,");
    println!("and others write to stand-ins for it until it recovers by itself.");
    if let Some(reason) = &report.storage_failure {
        println!("this node's storage failed: {reason}");
    }
    println!("'-': the member did not answer, or nothing to show.");
    Ok(())
}
