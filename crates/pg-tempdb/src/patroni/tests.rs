//! Unit tests of the cluster's settings and builder; no server starts.

use super::*;
use crate::template::SUPERUSER;

#[test]
fn a_superuser_application_role_or_a_lone_member_is_refused_before_anything_starts() {
    for builder in [
        PatroniCluster::builder().user(SUPERUSER),
        PatroniCluster::builder().members(1),
        PatroniCluster::builder().members(4),
    ] {
        let error = builder.start().expect_err("refused");
        assert!(
            matches!(error, TempDbError::InvalidSetting { .. }),
            "{error}"
        );
    }
}

#[test]
fn the_public_install_hint_names_the_pinned_version() {
    let pinned = format!(
        "patroni[raft,psycopg2-binary]=={}'",
        PatroniCluster::PINNED_VERSION
    );
    assert!(PatroniCluster::INSTALL_HINT.contains(&pinned));
    assert!(install::install_hint().contains(&pinned));
}

#[test]
fn the_url_names_every_member_and_encodes_the_password() {
    assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
}

/// Says why a test is skipped; fails it instead under
/// `POOL_REQUIRE_PATRONI=1` (set by `.ci/run`).
fn skip_without_patroni() {
    assert!(
        std::env::var("POOL_REQUIRE_PATRONI").map_or(true, |v| v != "1"),
        "POOL_REQUIRE_PATRONI=1 but Patroni was not found; {}",
        PatroniCluster::INSTALL_HINT
    );
    println!(
        "skipping: Patroni not found; {}",
        PatroniCluster::INSTALL_HINT
    );
}

/// The postmaster pids of `cluster`'s members, from their pid files.
fn postmaster_pids(cluster: &PatroniCluster) -> Vec<u32> {
    cluster
        .members()
        .iter()
        .filter_map(|m| std::fs::read_to_string(m.data_dir().join("postmaster.pid")).ok())
        .filter_map(|text| text.lines().next()?.trim().parse().ok())
        .collect()
}

/// In the child process of the test below: start a cluster and exit
/// without running `Drop`, as a killed test process would.
fn leak_a_cluster_and_exit() -> ! {
    let cluster = PatroniCluster::builder()
        .start()
        .expect("start a Patroni cluster")
        .expect("Patroni was found by the parent");
    let pids: Vec<String> = postmaster_pids(&cluster)
        .iter()
        .map(u32::to_string)
        .collect();
    let root = cluster
        .root
        .as_ref()
        .expect("root")
        .path()
        .display()
        .to_string();
    println!("LEAKED {} {root}", pids.join(","));
    std::process::exit(0);
}

#[test]
fn a_cluster_leaked_by_a_dead_process_is_stopped_and_deleted_by_its_guardians() {
    const CHILD_ENV: &str = "PG_TEMPDB_LEAK_PATRONI_CHILD";
    if std::env::var_os(CHILD_ENV).is_some() {
        leak_a_cluster_and_exit();
    }
    let install = Installation::discover().expect("PostgreSQL binaries");
    if install::find(&install)
        .expect("a usable Patroni, or none")
        .is_none()
    {
        return skip_without_patroni();
    }
    let output = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .args(["--exact", "patroni::tests::a_cluster_leaked_by_a_dead_process_is_stopped_and_deleted_by_its_guardians", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LEAKED "))
        .unwrap_or_else(|| panic!("the child printed no LEAKED line: {stdout}"));
    let (pids, root) = line.split_once(' ').expect("pids and a directory");
    let pids: Vec<u32> = pids.split(',').map(|p| p.parse().expect("a pid")).collect();
    assert_eq!(pids.len(), 2, "{line}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    assert!(
        exec::wait_gone(&pids, deadline),
        "postmasters {pids:?} outlived their test"
    );
    let mut backoff = exec::Backoff::new();
    while Path::new(root).exists() {
        assert!(std::time::Instant::now() < deadline, "{root} is left");
        backoff.sleep_until_next(deadline);
    }
}

/// Starts a real cluster (skipped, saying so, without Patroni), checks
/// Patroni's view, and that dropping it leaves no process or file.
#[test]
fn a_cluster_has_a_streaming_synchronous_standby_and_leaves_nothing_on_drop() {
    let cluster = match PatroniCluster::builder().password("pw-secret").start() {
        Ok(Some(cluster)) => cluster,
        Ok(None) => return skip_without_patroni(),
        Err(e) => panic!("start a Patroni cluster: {e}"),
    };
    let status = cluster.status().expect("GET /cluster");
    assert_eq!(status.len(), 2, "{status:?}");
    assert_eq!(status.iter().filter(|m| m.is_running_leader()).count(), 1);
    assert!(
        status.iter().any(|m| m.role == "sync_standby"),
        "{status:?}"
    );
    let url = cluster.url("read-write");
    let ports: Vec<String> = cluster
        .members()
        .iter()
        .map(|m| m.port().to_string())
        .collect();
    assert!(
        url.starts_with("postgres://app:pw-secret@127.0.0.1:"),
        "{url}"
    );
    assert!(ports.iter().all(|p| url.contains(p.as_str())), "{url}");
    assert!(!format!("{cluster:?}").contains("pw-secret"));

    let leader = cluster.leader().expect("a leader");
    let in_recovery = cluster
        .execute(leader, "SELECT pg_is_in_recovery()")
        .expect("ask the leader");
    assert_eq!(in_recovery, "f");
    let root = cluster.root.as_ref().expect("root").path().to_path_buf();
    let postmasters = postmaster_pids(&cluster);
    assert_eq!(postmasters.len(), 2);
    drop(cluster);
    assert!(!root.exists(), "{} is left", root.display());
    assert!(
        exec::wait_gone(
            &postmasters,
            std::time::Instant::now() + Duration::from_secs(5)
        ),
        "postmasters {postmasters:?} outlived the cluster"
    );
}
