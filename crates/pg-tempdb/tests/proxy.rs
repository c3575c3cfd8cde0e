//! The fault proxy between a real client and a real server: every mode and
//! one-shot fault, as a pool under test would meet them. Every wait in here
//! is bounded, and waits on state, not on time.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use pg_tempdb::{FaultProxy, Mode, TempDb};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

/// Generous bound for anything that should take milliseconds.
const BOUND: Duration = Duration::from_secs(15);

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

/// A client and its connection task, whose result says how the connection
/// ended.
struct Connected {
    client: Client,
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
}

async fn connect(config: &tokio_postgres::Config) -> Result<Connected, tokio_postgres::Error> {
    let (client, connection) = within("connect", config.connect(NoTls)).await?;
    Ok(Connected {
        client,
        connection: tokio::spawn(connection),
    })
}

async fn select_one(client: &Client) -> Result<(), tokio_postgres::Error> {
    within("SELECT 1", client.simple_query("SELECT 1")).await?;
    Ok(())
}

/// How the connection task ended: the I/O error kind, or `None` for end of
/// stream (a clean close by the peer).
async fn connection_end(
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
) -> Option<io::ErrorKind> {
    let ended = within("the connection task", connection)
        .await
        .expect("the connection task panicked");
    let error = ended.expect_err("the connection ended without an error");
    if error.is_closed() {
        return None;
    }
    let kind = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    assert!(kind.is_some(), "not an I/O error: {error:?}");
    kind
}

/// Waits (bounded) until `done` holds, re-checking every few milliseconds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn start() -> (TempDb, FaultProxy) {
    let db = TempDb::start().expect("start a server");
    let proxy = FaultProxy::for_db(&db).await.expect("start a proxy");
    (db, proxy)
}

#[tokio::test]
async fn a_client_through_the_proxy_runs_queries_via_config_and_via_url() {
    fn shareable<T: Send + Sync>() {}
    shareable::<FaultProxy>();

    let (db, proxy) = start().await;
    assert_eq!(proxy.mode(), Mode::PassThrough);
    assert_eq!(proxy.upstream().port(), db.port());
    assert_eq!(proxy.addr().ip().to_string(), "127.0.0.1");
    assert_eq!(
        proxy.url_for(&db),
        format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port())
    );

    let by_config = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&by_config.client).await.unwrap();
    let by_url = connect(&proxy.url_for(&db).parse().unwrap()).await.unwrap();
    select_one(&by_url.client).await.unwrap();

    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.connections(), 2);
    drop(by_url);
    wait_until("the closed client's connection is gone", || {
        proxy.connections() == 1
    })
    .await;
}

#[tokio::test]
async fn password_user_and_database_survive_the_proxy() {
    let db = TempDb::builder()
        .user("app")
        .password("s3cret:@/")
        .dbname("appdb")
        .start()
        .unwrap();
    let proxy = FaultProxy::for_db(&db).await.unwrap();
    let url = proxy.url_for(&db);
    assert!(
        url.ends_with(&format!("@127.0.0.1:{}/appdb", proxy.port())),
        "{url}"
    );
    for config in [proxy.config_for(&db), url.parse().unwrap()] {
        let connected = connect(&config).await.unwrap();
        let row = connected
            .client
            .query_one("SELECT current_user::text, current_database()::text", &[])
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, &str>(0), row.get::<_, &str>(1)),
            ("app", "appdb")
        );
    }
}

#[tokio::test]
async fn delay_holds_each_direction_of_a_round_trip_and_switches_off() {
    const DELAY: Duration = Duration::from_millis(300);
    let (db, proxy) = start().await;
    let connected = connect(&proxy.config_for(&db)).await.unwrap();

    proxy.set_mode(Mode::Delay(DELAY)).unwrap();
    let started = Instant::now();
    select_one(&connected.client).await.unwrap();
    let took = started.elapsed();
    // One chunk each way, each held for the delay.
    assert!(took >= 2 * DELAY, "a delayed round trip took only {took:?}");
    assert!(took < 2 * DELAY + Duration::from_secs(3), "took {took:?}");

    proxy.set_mode(Mode::PassThrough).unwrap();
    let started = Instant::now();
    select_one(&connected.client).await.unwrap();
    assert!(
        started.elapsed() < DELAY,
        "still delayed: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_query_waits_and_completes_once_the_stall_ends() {
    let (db, proxy) = start().await;
    let connected = connect(&proxy.config_for(&db)).await.unwrap();

    proxy.set_mode(Mode::Stall).unwrap();
    let query = connected.client.simple_query("SELECT 1");
    tokio::pin!(query);
    let stalled = tokio::time::timeout(Duration::from_millis(300), &mut query).await;
    assert!(stalled.is_err(), "a query finished during a stall");
    assert_eq!(proxy.connections(), 1, "a stall keeps the connection open");

    // The documented behaviour: what was queued is delivered, in order.
    proxy.set_mode(Mode::PassThrough).unwrap();
    within("the stalled query", &mut query).await.unwrap();
    select_one(&connected.client).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_all_breaks_open_clients_with_a_connection_reset() {
    let (db, proxy) = start().await;
    let first = connect(&proxy.config_for(&db)).await.unwrap();
    let second = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&first.client).await.unwrap();

    assert_eq!(proxy.reset_all(), 2);
    wait_until("the reset connections are closed", || {
        proxy.connections() == 0
    })
    .await;

    assert!(select_one(&first.client).await.is_err());
    assert_eq!(
        connection_end(first.connection).await,
        Some(io::ErrorKind::ConnectionReset)
    );
    assert_eq!(
        connection_end(second.connection).await,
        Some(io::ErrorKind::ConnectionReset)
    );
    assert!(select_one(&second.client).await.is_err());

    // The proxy itself goes on serving.
    let fresh = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&fresh.client).await.unwrap();
    assert_eq!(proxy.reset_all(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_all_ends_open_clients_with_a_clean_close() {
    let (db, proxy) = start().await;
    let connected = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&connected.client).await.unwrap();

    assert_eq!(proxy.close_all(), 1);
    wait_until("the closed connection is gone", || proxy.connections() == 0).await;

    // End of stream, not an I/O error.
    assert_eq!(connection_end(connected.connection).await, None);
    assert!(select_one(&connected.client).await.is_err());
    assert_eq!(proxy.close_all(), 0);

    let fresh = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&fresh.client).await.unwrap();
}

#[tokio::test]
async fn refuse_fails_new_connects_fast_and_leaving_it_reopens_the_same_port() {
    let (db, proxy) = start().await;
    let port = proxy.port();
    let open = connect(&proxy.config_for(&db)).await.unwrap();

    proxy.set_mode(Mode::Refuse).unwrap();
    let started = Instant::now();
    let refused = tokio::net::TcpStream::connect(proxy.addr())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let Err(error) = connect(&proxy.config_for(&db)).await else {
        panic!("connected while the proxy refuses");
    };
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let kind = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    assert_eq!(kind, Some(io::ErrorKind::ConnectionRefused), "{error:?}");
    assert_eq!(proxy.accepted(), 1, "refused connects are not accepted");
    select_one(&open.client).await.unwrap();

    proxy.set_mode(Mode::PassThrough).unwrap();
    assert_eq!(proxy.port(), port);
    let fresh = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&fresh.client).await.unwrap();
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn accept_then_silence_counts_connects_that_then_time_out() {
    let (db, proxy) = start().await;
    let open = connect(&proxy.config_for(&db)).await.unwrap();

    proxy.set_mode(Mode::AcceptThenSilence).unwrap();
    let silent = tokio::time::timeout(
        Duration::from_millis(500),
        proxy.config_for(&db).connect(NoTls),
    )
    .await;
    assert!(
        silent.is_err(),
        "a connect was answered in AcceptThenSilence"
    );
    wait_until("the silent connect is counted", || proxy.accepted() == 2).await;
    select_one(&open.client).await.unwrap();

    // The timed-out connect dropped its socket; the proxy notices.
    wait_until("the abandoned silent connection is gone", || {
        proxy.connections() == 1
    })
    .await;
}

#[tokio::test]
async fn a_connect_while_the_database_is_down_is_counted_and_fails_fast() {
    let (db, proxy) = start().await;
    db.stop().unwrap();

    let started = Instant::now();
    for attempt in 1..=3 {
        assert!(connect(&proxy.config_for(&db)).await.is_err());
        assert_eq!(proxy.accepted(), attempt);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    wait_until("the failed connections are gone", || {
        proxy.connections() == 0
    })
    .await;

    db.start_again().unwrap();
    let connected = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&connected.client).await.unwrap();
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections_and_its_port() {
    let (db, proxy) = start().await;
    let connected = connect(&proxy.config_for(&db)).await.unwrap();
    select_one(&connected.client).await.unwrap();
    let addr = proxy.addr();

    drop(proxy);
    assert!(select_one(&connected.client).await.is_err());
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}
