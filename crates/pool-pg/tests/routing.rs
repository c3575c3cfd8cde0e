//! Read routing against a real primary and streaming standby: reads go to
//! the standby, fall back to the primary while it is down, and return to
//! it once it is back; writes always go to the primary.

mod common;

use std::time::Duration;

use common::{wait_until, WAIT};
use pg_tempdb::{TempCluster, TempDb};
use pool_pg::{PgPooledConnection, ReadWritePools};
use tokio::time::{timeout, Instant};

/// The read fallback window these tests use.
const FALLBACK: Duration = Duration::from_millis(300);

fn start_cluster() -> TempCluster {
    TempCluster::start(TempDb::builder()).expect("start a primary and a streaming standby")
}

/// Both pools from one `prefer-standby` URL, the way a service reads its
/// environment.
async fn pools(cluster: &TempCluster, app: &str) -> ReadWritePools {
    let url = format!("{}&application_name={app}", cluster.url("prefer-standby"));
    ReadWritePools::from_vars([
        ("DATABASE_URL", url.as_str()),
        ("POOL_MIN_SIZE", "1"),
        ("POOL_MAX_SIZE", "4"),
        ("POOL_CREATE_TIMEOUT_MS", "1000"),
        ("POOL_ACQUIRE_TIMEOUT_MS", "2000"),
        ("POOL_RECONNECT_INITIAL_DELAY_MS", "50"),
        ("POOL_RECONNECT_MAX_DELAY_MS", "200"),
    ])
    .await
    .unwrap_or_else(|e| panic!("build the pools: {e}"))
    .read_fallback(FALLBACK)
}

/// Whether `conn` is on a standby.
async fn in_recovery(conn: &PgPooledConnection) -> Result<bool, String> {
    conn.query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map(|row| row.get(0))
        .map_err(|e| e.to_string())
}

/// One read, bounded: `Ok(true)` when a standby served it.
async fn read_on_standby(pools: &ReadWritePools) -> Result<bool, String> {
    let read = async {
        let conn = pools.read().await.map_err(|e| e.to_string())?;
        in_recovery(&conn).await
    };
    timeout(FALLBACK + Duration::from_secs(2), read)
        .await
        .unwrap_or_else(|_| Err("read hung".to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_standby_and_writes_to_the_primary() {
    let cluster = start_cluster();
    let pools = pools(&cluster, "routing-basic").await;
    for _ in 0..5 {
        assert_eq!(read_on_standby(&pools).await, Ok(true));
        let write = pools.write().await.expect("acquire for a write");
        assert_eq!(in_recovery(&write).await, Ok(false));
    }
    let statistics = pools.statistics();
    assert_eq!(statistics.reads_on_primary, 0, "{statistics:?}");
    // Named apart (POOL_NAME is unset: `default`), so their metrics and
    // log events do not merge.
    assert_eq!(statistics.primary.pool, "default.primary");
    assert_eq!(
        statistics.replicas.map(|r| r.pool).as_deref(),
        Some("default.replica")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fall_back_to_the_primary_while_the_standby_is_down_and_return_after() {
    let cluster = start_cluster();
    let pools = pools(&cluster, "routing-fallback").await;
    assert_eq!(read_on_standby(&pools).await, Ok(true));

    cluster.standby().stop().expect("stop the standby");
    let stopped = Instant::now();
    // A read may meet a connection the stop killed a moment ago (at most
    // one per connection the replica pool had); then reads fall back.
    let mut failed = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match read_on_standby(&pools).await {
            Ok(false) => break,
            Ok(true) => panic!("a read reached the stopped standby"),
            Err(error) => failed.push(error),
        }
        assert!(
            Instant::now() < deadline,
            "reads never fell back: {failed:?}"
        );
    }
    let fell_back = stopped.elapsed();
    assert!(
        failed.len() <= 4,
        "more failed reads than connections: {failed:?}"
    );
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(
            read_on_standby(&pools).await,
            Ok(false),
            "reads must fall back"
        );
        assert!(
            started.elapsed() < FALLBACK + Duration::from_millis(500),
            "a fallback read took {:?}",
            started.elapsed()
        );
    }
    assert!(pools.statistics().reads_on_primary >= 10);

    cluster
        .standby()
        .start_again()
        .expect("start the standby again");
    let restarted = Instant::now();
    let mut back = false;
    let deadline = Instant::now() + WAIT;
    while !back {
        back = read_on_standby(&pools).await == Ok(true);
        assert!(
            Instant::now() < deadline,
            "reads never returned to the standby"
        );
        if !back {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!(
        "routing: reads fell back {fell_back:?} after the standby stopped ({} failed on the \
         way), returned {:?} after it was back",
        failed.len(),
        restarted.elapsed()
    );
}

#[tokio::test]
async fn without_a_replica_pool_reads_go_to_the_primary() {
    let db = common::start_db();
    let pools = ReadWritePools::connect(&db.url(), None, common::small_pool())
        .await
        .expect("build the pools");
    assert!(pools.replicas().is_none());
    let conn = pools.read().await.expect("read");
    assert_eq!(in_recovery(&conn).await, Ok(false));
    drop(conn);
    wait_until("the read connection is back", || {
        pools.primary().statistics().active_connections == 0
    })
    .await;
    assert_eq!(pools.statistics().reads_on_primary, 0);
}
