//! The Prometheus publisher, in process: each metric follows the pool's own
//! statistics snapshot, with its labels.

mod common;

use std::time::Duration;

use examples::metrics::Exporter;
use pool_pg::{PgPool, PgPoolExt, PoolConfig};

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_follows_the_statistics_snapshot() {
    let db = common::database();
    let pool = PgPool::connect(&db.url(), PoolConfig::default().min_size(2).max_size(5))
        .await
        .unwrap();
    let exporter = Exporter::local(pool.clone(), "orders");

    let held = pool.acquire().await.unwrap();
    held.discard();
    let held = pool.acquire().await.unwrap();
    let text = exporter.scrape();
    let stats = pool.statistics();

    let pool_label = "pool_name=\"orders\"";
    assert_eq!(
        line(
            &text,
            &format!("db_client_connections{{{pool_label},state=\"used\"}}")
        ),
        format!("db_client_connections{{{pool_label},state=\"used\"}} 1")
    );
    assert!(line(
        &text,
        "db_client_connections{pool_name=\"orders\",state=\"idle\"}"
    )
    .ends_with(&format!(" {}", stats.idle_connections)));
    assert!(line(&text, "db_client_connections_max{pool_name=\"orders\"}").ends_with(" 5"));
    assert!(line(
        &text,
        "db_client_connections_idle_min{pool_name=\"orders\"}"
    )
    .ends_with(" 2"));
    assert!(line(
        &text,
        "db_client_connection_closed_total{pool_name=\"orders\",reason=\"discarded\"}"
    )
    .ends_with(" 1"));
    assert!(line(
        &text,
        "db_client_connection_closed_total{pool_name=\"orders\",reason=\"lifetime\"}"
    )
    .ends_with(" 0"));
    assert!(line(
        &text,
        "db_client_connection_acquisitions_total{pool_name=\"orders\"}"
    )
    .ends_with(&format!(" {}", stats.total_acquisitions)));
    assert!(line(
        &text,
        "db_client_connection_created_total{pool_name=\"orders\"}"
    )
    .ends_with(&format!(" {}", stats.connections_created)));
    assert!(line(
        &text,
        "db_client_connection_create_time_seconds_count{pool_name=\"orders\"}"
    )
    .ends_with(&format!(" {}", stats.create_time.count)));
    assert!(line(&text, "pool_state{pool_name=\"orders\",state=\"HEALTHY\"}").ends_with(" 1"));
    assert!(line(
        &text,
        "pool_health_status{pool_name=\"orders\",status=\"healthy\"}"
    )
    .ends_with(" 1"));
    assert!(line(&text, "# HELP db_client_connections_pending_requests")
        .contains("OTel db.client.connection.pending_requests"));
    drop(held);

    pool.shutdown(Duration::from_secs(5)).await;
    let text = exporter.scrape();
    assert!(line(
        &text,
        "pool_state{pool_name=\"orders\",state=\"TERMINATED\"}"
    )
    .ends_with(" 1"));
    assert!(line(
        &text,
        "pool_health_status{pool_name=\"orders\",status=\"unhealthy\"}"
    )
    .ends_with(" 1"));
}
