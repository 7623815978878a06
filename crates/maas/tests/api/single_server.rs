//! One `maas serve` per data directory, and per PostgreSQL database: a second server is
//! refused before it touches anything, and the first keeps serving undisturbed.

use serde_json::Value;

use crate::harness::*;

fn server_json(srv: &TestServer) -> Value {
    let text = std::fs::read_to_string(srv.data_dir.join("server.json")).expect("server.json");
    serde_json::from_str(&text).expect("server.json is JSON")
}

#[tokio::test]
async fn a_second_server_on_a_data_dir_is_refused() {
    let mut srv = TestServer::start().await;
    let alice = srv.register("localhost", "alice", "pw-alice-1").await;
    let before = server_json(&srv);

    let second = srv.serve_command(&srv.data_dir);
    let stderr = refused_start(second, &srv.data_dir).await;
    let expected = format!(
        "another maas serve (pid {}) uses data dir {}",
        srv.pid(),
        srv.data_dir.display()
    );
    assert!(stderr.contains(&expected), "stderr:\n{stderr}");

    // The refused server left the first one's announcement alone, and the first one serves on.
    assert_eq!(server_json(&srv), before);
    srv.on("localhost").as_user(&alice).whoami().await.ok();
    srv.op().get(&format!("{OP}/tenants")).await.ok();

    // The lock dies with its process, however it ends: no stale lock blocks a restart.
    let status = srv.stop_with("-KILL").await;
    assert!(!status.success());
    srv.restart_after_stop().await;
    srv.on("localhost").as_user(&alice).whoami().await.ok();
}

#[tokio::test]
async fn a_second_server_on_a_postgres_database_is_refused() {
    let srv = TestServer::start_with(Options::default().on_backend(TestBackend::Postgres)).await;
    let alice = srv.register("localhost", "alice", "pw-alice-1").await;

    // Another data directory, the same database: the data directory's lock can't see it.
    let other = tempfile::tempdir().expect("tempdir");
    let other_dir = other.path().join("data");
    let second = srv.serve_command(&other_dir);
    let stderr = refused_start(second, &other_dir).await;
    assert!(
        stderr.contains("another maas serve") && stderr.contains("PostgreSQL database"),
        "stderr:\n{stderr}"
    );
    assert!(!other_dir.join("server.json").exists());
    srv.on("localhost").as_user(&alice).whoami().await.ok();
}
