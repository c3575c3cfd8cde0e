//! The throwaway server against a real client: connecting, authentication,
//! every fault control, and cleanup. Every wait in here is bounded.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pg_tempdb::{TempDb, TempDbError};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Generous bound for anything that should take milliseconds.
const BOUND: Duration = Duration::from_secs(15);

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

/// Connects with `config`, spawning the connection task.
async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = within("connect", config.connect(NoTls)).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn select_one(client: &Client) -> Result<i32, tokio_postgres::Error> {
    let row = within("SELECT 1", client.query_one("SELECT 1::int4", &[])).await?;
    Ok(row.get(0))
}

/// True once the process is gone or a zombie (reaped by nobody yet).
fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_started_server_answers_select_1_via_config_and_via_url() {
    let db = TempDb::start().unwrap();
    assert_eq!(db.host(), "127.0.0.1");
    assert_eq!(db.user(), "postgres");
    assert_eq!(db.dbname(), "postgres");
    assert_eq!(db.password(), None);
    assert!(db.is_running());

    let client = connect(&db.config()).await.unwrap();
    assert_eq!(select_one(&client).await.unwrap(), 1);

    assert_eq!(
        db.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", db.port())
    );
    let from_url: tokio_postgres::Config = db.url().parse().unwrap();
    let client = connect(&from_url).await.unwrap();
    assert_eq!(select_one(&client).await.unwrap(), 1);
}

#[tokio::test]
async fn password_auth_accepts_the_right_password_and_rejects_a_wrong_one() {
    let db = TempDb::builder()
        .user("app")
        .password("s3cret:@/")
        .dbname("appdb")
        .start()
        .unwrap();
    assert_eq!(db.password(), Some("s3cret:@/"));

    let client = connect(&db.config()).await.unwrap();
    assert_eq!(select_one(&client).await.unwrap(), 1);
    let row = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("app".into(), "appdb".into())
    );
    client
        .batch_execute("CREATE TABLE owned_by_app (id int)")
        .await
        .unwrap();

    let from_url: tokio_postgres::Config = db.url().parse().unwrap();
    assert_eq!(
        select_one(&connect(&from_url).await.unwrap())
            .await
            .unwrap(),
        1
    );

    let mut wrong = db.config();
    wrong.password("not-the-password");
    let Err(err) = connect(&wrong).await else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");

    let without: tokio_postgres::Config =
        format!("host=127.0.0.1 port={} user=app dbname=appdb", db.port())
            .parse()
            .unwrap();
    assert!(connect(&without).await.is_err(), "no password is rejected");

    // The admin helpers still work: they use the superuser over the socket.
    assert_eq!(db.execute("SELECT current_user").unwrap(), "postgres");
    assert!(!format!("{db:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_starts_again_with_its_data() {
    let db = TempDb::start().unwrap();
    let port = db.port();
    db.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        .unwrap();

    db.stop().unwrap();
    assert!(!db.is_running());
    assert_eq!(db.postmaster_pid(), None);
    assert!(connect(&db.config()).await.is_err());
    assert!(matches!(
        db.execute("SELECT 1"),
        Err(TempDbError::NotRunning { .. })
    ));
    db.stop().unwrap(); // stopping twice is fine

    db.start_again().unwrap();
    assert_eq!(db.port(), port);
    let client = connect(&db.config()).await.unwrap();
    let row = client.query_one("SELECT v FROM kept", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test]
async fn restart_replaces_the_postmaster_and_drops_open_connections() {
    let db = TempDb::start().unwrap();
    let before = db.postmaster_pid().unwrap();
    let client = connect(&db.config()).await.unwrap();
    assert_eq!(select_one(&client).await.unwrap(), 1);

    db.restart().unwrap();
    let after = db.postmaster_pid().unwrap();
    assert_ne!(before, after);
    assert!(process_is_gone(before));
    assert!(
        select_one(&client).await.is_err(),
        "the old connection is gone"
    );

    let client = connect(&db.config()).await.unwrap();
    assert_eq!(select_one(&client).await.unwrap(), 1);
}

#[tokio::test]
async fn a_killed_server_drops_its_clients_and_starts_again_through_crash_recovery() {
    // The kit's default (`synchronous_commit=off`, for speed) may lose the
    // last commits in a crash; with it on, an acknowledged commit is in the
    // WAL before the client hears of it, and survives `kill -9`.
    let db = TempDb::builder()
        .setting("synchronous_commit", "on")
        .start()
        .unwrap();
    let before = db.postmaster_pid().unwrap();
    let client = connect(&db.config()).await.unwrap();
    within(
        "a committed row",
        client.batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)"),
    )
    .await
    .unwrap();

    db.kill().unwrap();
    assert!(!db.is_running());
    assert!(process_is_gone(before));
    assert!(
        select_one(&client).await.is_err(),
        "the backend died with its postmaster"
    );
    assert!(connect(&db.config()).await.is_err(), "nothing listens");

    db.start_again().unwrap();
    let log = std::fs::read_to_string(db.log_path()).unwrap();
    assert!(
        log.contains("not properly shut down") || log.contains("interrupted"),
        "the new server ran crash recovery:\n{}",
        db.log_tail(20)
    );
    let client = connect(&db.config()).await.unwrap();
    let row = within("the row", client.query_one("SELECT id FROM kept", &[]))
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        7,
        "a committed row survives the crash"
    );
}

#[tokio::test]
async fn a_paused_server_leaves_new_connects_hanging_until_resumed() {
    let db = TempDb::start().unwrap();
    let existing = connect(&db.config()).await.unwrap();

    db.pause().unwrap();
    assert!(db.is_paused() && db.is_running());
    let attempt = tokio::time::timeout(Duration::from_secs(1), db.config().connect(NoTls)).await;
    assert!(
        attempt.is_err(),
        "the connect attempt should time out while paused"
    );
    // Backends are separate processes: open connections keep working.
    assert_eq!(select_one(&existing).await.unwrap(), 1);
    assert!(matches!(
        db.execute("SELECT 1"),
        Err(TempDbError::Paused { .. })
    ));

    db.resume().unwrap();
    assert!(!db.is_paused());
    let client = connect(&db.config()).await.unwrap();
    assert_eq!(select_one(&client).await.unwrap(), 1);
}

#[tokio::test]
async fn terminate_backends_kills_open_clients_whose_next_query_fails() {
    let db = TempDb::start().unwrap();
    let mut config = db.config();
    let victim = connect(config.application_name("victim")).await.unwrap();
    let bystander = connect(config.application_name("bystander")).await.unwrap();
    assert_eq!(db.count_connections("victim").unwrap(), 1);
    assert_eq!(db.count_all_connections().unwrap(), 2);

    assert_eq!(db.terminate_backends_of("victim").unwrap(), 1);
    assert!(select_one(&victim).await.is_err());
    assert_eq!(select_one(&bystander).await.unwrap(), 1);
    assert_eq!(db.count_connections("victim").unwrap(), 0);

    assert_eq!(db.terminate_backends().unwrap(), 1);
    assert!(select_one(&bystander).await.is_err());
    db.wait_for_connections(None, 0, BOUND).unwrap();
}

#[test]
fn execute_returns_results_and_reports_sql_errors_with_the_server_log() {
    let db = TempDb::builder()
        .max_connections(7)
        .setting("work_mem", "8MB")
        .start()
        .unwrap();
    assert_eq!(db.execute("SELECT 1").unwrap(), "1");
    assert_eq!(
        db.execute("SELECT 1, 'a' UNION ALL SELECT 2, 'b'").unwrap(),
        "1|a\n2|b"
    );
    assert_eq!(
        db.execute("CREATE TABLE t (id int)").unwrap(),
        "CREATE TABLE"
    );
    assert_eq!(db.execute("SHOW max_connections").unwrap(), "7");
    assert_eq!(db.execute("SHOW work_mem").unwrap(), "8MB");
    assert_eq!(db.execute("SHOW fsync").unwrap(), "off");
    assert_eq!(db.query_scalar::<i64>("SELECT 40 + 2").unwrap(), 42);

    let err = db.execute("SELECT * FROM no_such_table").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no_such_table"), "{text}");
    assert!(text.contains("server log"), "{text}");
    assert!(db.log_tail(50).contains("no_such_table"));
    assert!(db.log_path().exists());
}

#[test]
fn drop_stops_the_postmaster_and_removes_the_directory() {
    let db = TempDb::start().unwrap();
    let pid = db.postmaster_pid().unwrap();
    let root = db.data_dir().parent().unwrap().to_path_buf();
    assert!(db.data_dir().join("PG_VERSION").exists());
    assert!(!process_is_gone(pid));

    drop(db);
    assert!(process_is_gone(pid), "postmaster {pid} still alive");
    assert!(!root.exists(), "{} still exists", root.display());
}

#[test]
fn drop_while_paused_and_during_a_panic_still_cleans_up() {
    let mut seen: Option<(u32, PathBuf)> = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let db = TempDb::start().unwrap();
        seen = Some((db.postmaster_pid().unwrap(), db.data_dir().to_path_buf()));
        db.pause().unwrap();
        panic!("a failing test");
    }));
    assert!(outcome.is_err());
    let (pid, data_dir) = seen.unwrap();
    assert!(process_is_gone(pid), "postmaster {pid} still alive");
    assert!(!data_dir.exists());
}

#[test]
fn two_servers_run_at_once_on_different_ports() {
    let first = TempDb::start().unwrap();
    let second = TempDb::start().unwrap();
    assert_ne!(first.port(), second.port());
    assert_ne!(first.data_dir(), second.data_dir());
    assert_ne!(first.socket_dir(), second.socket_dir());
    first.execute("CREATE TABLE only_in_first ()").unwrap();
    assert_eq!(
        second
            .execute("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'")
            .unwrap(),
        "0"
    );
}

#[test]
fn settings_the_kit_relies_on_are_refused_before_anything_starts() {
    let err = TempDb::builder()
        .setting("port", "5432")
        .start()
        .unwrap_err();
    assert!(matches!(err, TempDbError::InvalidSetting { .. }), "{err}");
}

/// In the child process (started by the test below with
/// `PG_TEMPDB_LEAK_CHILD` set): start a server and exit without running
/// `Drop`, as a killed test process would.
#[allow(clippy::unwrap_used)] // test code outside a #[test] function
fn leak_a_server_and_exit() -> ! {
    let db = TempDb::start().unwrap();
    println!(
        "LEAKED {} {}",
        db.postmaster_pid().unwrap(),
        db.data_dir().parent().unwrap().display()
    );
    std::process::exit(0);
}

#[test]
fn a_server_leaked_by_a_dead_process_is_cleaned_up_by_its_guardian() {
    if std::env::var_os("PG_TEMPDB_LEAK_CHILD").is_some() {
        leak_a_server_and_exit();
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_server_leaked_by_a_dead_process_is_cleaned_up_by_its_guardian",
            "--nocapture",
        ])
        .env("PG_TEMPDB_LEAK_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LEAKED "))
        .unwrap_or_else(|| panic!("helper printed no LEAKED line: {stdout}"));
    let (pid, root) = line.split_once(' ').unwrap();
    let (pid, root): (u32, &Path) = (pid.parse().unwrap(), Path::new(root));

    wait_until("the guardian stops the postmaster", BOUND, || {
        process_is_gone(pid)
    });
    wait_until("the guardian deletes the directory", BOUND, || {
        !root.exists()
    });
}
