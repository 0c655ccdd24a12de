//! `schema/shiplog.graphql` is generated from the GraphQL types. This test
//! fails when it drifts; to refresh it after changing the API, run
//! `SHIPLOG_UPDATE_SCHEMAS=1 cargo test -p shiplog-server --test graphql_sdl`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn graphql_sdl_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/shiplog.graphql");
    let sdl = shiplog_server::graphql::sdl();
    if std::env::var_os("SHIPLOG_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &sdl).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == sdl,
        "schema/shiplog.graphql is out of date\nrun: SHIPLOG_UPDATE_SCHEMAS=1 cargo test -p shiplog-server --test graphql_sdl"
    );
}
