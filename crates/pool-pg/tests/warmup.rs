//! `build()` opens and validates `min_size` connections before it returns,
//! and the server sees exactly those, named by `application_name`.

mod common;

use common::{start_db, WAIT};
use pool_pg::defaults::DEFAULT_APPLICATION_NAME;
use pool_pg::{PgPool, PoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_opens_and_validates_min_size_connections() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), PoolConfig::default().min_size(3).max_size(5))
        .await
        .unwrap();

    let stats = pool.statistics();
    assert_eq!(stats.idle_connections, 3, "{stats:?}");
    assert_eq!(stats.total_connections, 3, "{stats:?}");
    assert_eq!(stats.connections_created, 3, "{stats:?}");
    assert_eq!(stats.validations, 3, "{stats:?}");
    assert_eq!(db.count_connections(DEFAULT_APPLICATION_NAME).unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_name_in_the_url_is_kept() {
    let db = start_db();
    let url = format!("{}?application_name=orders-api", db.url());
    let _pool = PgPool::connect(&url, PoolConfig::default().min_size(2))
        .await
        .unwrap();

    assert_eq!(db.count_connections("orders-api").unwrap(), 2);
    assert_eq!(db.count_connections(DEFAULT_APPLICATION_NAME).unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_pool_closes_every_backend() {
    let db = start_db();
    let pool = PgPool::connect(&db.url(), PoolConfig::default().min_size(2))
        .await
        .unwrap();
    assert_eq!(db.count_connections(DEFAULT_APPLICATION_NAME).unwrap(), 2);

    pool.close();

    // Each dropped connection aborted its socket task: the server sees them go.
    db.wait_for_connections(Some(DEFAULT_APPLICATION_NAME), 0, WAIT)
        .unwrap();
    assert_eq!(pool.manager().connection_errors(), 0);
}
