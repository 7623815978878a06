//! Loaded tenants are bounded (`tenants.max_loaded`): using one more than the limit first
//! unloads the least recently used, whose data is all there when it is used again.

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::*;

/// Tenant ids whose SQLite database the server process has open now.
fn tenants_with_open_databases(srv: &TestServer) -> HashSet<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", srv.pid())) else {
        return HashSet::new();
    };
    let tenants = srv.data_dir.join("tenants");
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let rest = target.strip_prefix(&tenants).ok()?;
            Some(rest.components().next()?.as_os_str().to_str()?.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn using_more_tenants_than_the_limit_unloads_the_least_recently_used() {
    let srv = TestServer::start_with(Options::default().env("MAAS_TENANTS__MAX_LOADED", "2")).await;
    let names = ["one.test", "two.test", "three.test", "four.test"];
    for name in names {
        srv.create_tenant(name, &[name], "open").await;
    }
    let mut sessions = Vec::new();
    for name in names {
        sessions.push(srv.register(name, "alice", "pw-alice").await);
    }

    // Each tenant was unloaded by the later ones, and answers for its own user again.
    for (name, session) in names.iter().zip(&sessions) {
        let me = srv.on(name).as_user(session).whoami().await.ok();
        assert_eq!(me["user_id"], format!("@alice:{name}"));
        srv.login(name, "alice", "pw-alice").await;
    }

    // Unloaded tenants close their databases once their last request is done.
    let mut open = tenants_with_open_databases(&srv);
    for _ in 0..100 {
        if open.len() <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        open = tenants_with_open_databases(&srv);
    }
    // On PostgreSQL tenants share the server's pool and hold no files of their own.
    if cfg!(target_os = "linux") && postgres_base_url().is_none() {
        assert!(
            (1..=2).contains(&open.len()),
            "tenant databases open: {open:?}"
        );
    }
}
