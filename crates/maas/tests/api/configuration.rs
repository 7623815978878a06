//! `maas serve` refuses a configuration it doesn't understand, naming the key, before it
//! creates or changes anything.

use std::path::Path;

use crate::harness::*;

/// A `maas serve` like `srv`'s on a fresh data directory under `dir`, with `config` as its
/// configuration file and `env` on top; returns its stderr once it refused to start.
async fn refused(srv: &TestServer, dir: &Path, config: &str, env: &[(&str, &str)]) -> String {
    let file = dir.join("maas.toml");
    std::fs::write(&file, config).expect("writing the config file");
    let data_dir = dir.join("data");
    let mut cmd = srv.serve_command(&data_dir);
    cmd.arg("--config").arg(&file);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let stderr = refused_start(cmd, &data_dir).await;
    assert!(
        !data_dir.exists(),
        "a refused start created the data dir\n{stderr}"
    );
    stderr
}

#[tokio::test]
async fn unknown_keys_and_bad_values_fail_start_up_naming_the_key() {
    let srv = TestServer::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // A typo of `[rate_limits]`: rate limits would silently stay on.
    let err = refused(&srv, dir, "[rate_limit]\nenabled = false\n", &[]).await;
    assert!(
        err.contains("unknown configuration key rate_limit"),
        "stderr:\n{err}"
    );
    assert!(err.contains("maas.toml"), "the file is named:\n{err}");

    let err = refused(&srv, dir, "[server]\nlisten_addr = \"0.0.0.0:1\"\n", &[]).await;
    assert!(
        err.contains("unknown configuration key server.listen_addr"),
        "stderr:\n{err}"
    );

    let err = refused(&srv, dir, "", &[("MAAS_RATE_LIMIT__ENABLED", "false")]).await;
    assert!(
        err.contains("unknown configuration key rate_limit")
            && err.contains("MAAS_RATE_LIMIT__ENABLED"),
        "stderr:\n{err}"
    );

    // A bad value names its key and where it came from, not a place in maas's source.
    // (`--listen` of the harness would override `MAAS_SERVER__LISTEN`.)
    let err = refused(&srv, dir, "", &[("MAAS_OPERATOR__LISTEN", "nowhere")]).await;
    assert!(
        err.contains("operator.listen") && err.contains("MAAS_OPERATOR__LISTEN"),
        "stderr:\n{err}"
    );
    assert!(!err.contains(".rs"), "a source path in:\n{err}");
    let err = refused(&srv, dir, "[tenants]\nidle_unload_secs = \"soon\"\n", &[]).await;
    assert!(
        err.contains("tenants.idle_unload_secs") && err.contains("maas.toml"),
        "stderr:\n{err}"
    );

    // Values of the right type that can't work are refused too.
    let err = refused(&srv, dir, "[passwords]\nparallelism = 0\n", &[]).await;
    assert!(err.contains("passwords.parallelism"), "stderr:\n{err}");
    let err = refused(&srv, dir, "", &[("MAAS_DATABASE__MAX_CONNECTIONS", "0")]).await;
    assert!(err.contains("database.max_connections"), "stderr:\n{err}");

    // The running server is untouched by all this.
    srv.on("localhost")
        .get("/_matrix/client/versions")
        .await
        .ok();
}
