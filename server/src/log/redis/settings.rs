//! The settings check: a Redis that can lose what it acknowledged is refused at start.

use super::timed;
use crate::redis_link::RedisLink;

/// Refuses a Redis at `url` that can lose what it acknowledged — no append-only file, fsync less
/// often than every write, or keys evicted under memory pressure — unless `accept_risk`, when it is
/// only warned about. Acknowledged means kept only when Redis itself keeps it. On a Redis Cluster,
/// every node is asked: a replica promoted after a failover must keep what it took over.
pub async fn check_server(link: &RedisLink, accept_risk: bool) -> anyhow::Result<()> {
    let url = link.nodes().first().cloned().unwrap_or_default();
    let mut risks = Vec::new();
    for (node, conn) in link.each_node().await {
        let mut conn = conn.map_err(|e| anyhow::anyhow!("cannot reach Redis at {node}: {e}"))?;
        let mut setting = async |name: &str| -> anyhow::Result<String> {
            let pair: Vec<String> = timed(
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async(&mut conn),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot read {name} of Redis at {node}: {e}"))?;
            Ok(pair.get(1).cloned().unwrap_or_default())
        };
        let at = if link.is_cluster() {
            format!(" on {node}")
        } else {
            String::new()
        };
        if setting("appendonly").await? != "yes" {
            risks.push(format!(
                "appendonly is not yes{at}: a restart loses what was acknowledged since the last \
                 snapshot"
            ));
        }
        if setting("appendfsync").await? != "always" {
            risks.push(format!(
                "appendfsync is not always{at}: a crash loses up to a second of acknowledged messages"
            ));
        }
        if setting("maxmemory-policy").await? != "noeviction" {
            risks.push(format!(
                "maxmemory-policy is not noeviction{at}: Redis may delete history to free memory"
            ));
        }
    }
    if link.is_cluster() {
        tracing::info!(nodes = %link.nodes().join(" "), "Redis at {url} is a Redis Cluster");
    }
    if risks.is_empty() {
        return Ok(());
    }
    let said = risks.join("; ");
    if accept_risk {
        tracing::warn!(
            "Redis at {url} can lose acknowledged messages ({said}); started anyway (--redis-accept-risk)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "Redis at {url} can lose acknowledged messages: {said}. Set it to keep them \
         (appendonly yes, appendfsync always, maxmemory-policy noeviction), or start with \
         --redis-accept-risk to run anyway"
    )
}
