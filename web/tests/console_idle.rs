//! Idle expiry, on a simulated clock (this binary's only test: the clock
//! is the whole process's). A console session ends 30 minutes after its
//! last page; each page pushes the end further, never past the session's
//! lifetime from sign-in.

mod support;

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use modelfleet_api::store::Backend;
use modelfleet_api::store::testing::run;
use support::{Browser, Hub, tenant_with_admin};

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes_and_pages_keep_it_alive() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    modelfleet_clock::set(&clock, start).unwrap();
    modelfleet_clock::simulate(&clock).unwrap();
    let at = |minutes: u64| start + Duration::from_secs(minutes * 60);

    run(Backend::Sqlite, |db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // Pages at 20 and 40 minutes keep it alive: each moves the end.
        for minutes in [20, 40] {
            modelfleet_clock::set(&clock, at(minutes)).unwrap();
            let page = browser.get("/deployments").await;
            assert_eq!(page.status, StatusCode::OK, "at {minutes} min");
        }
        // 31 idle minutes after the last page, it has ended.
        modelfleet_clock::set(&clock, at(71)).unwrap();
        let page = browser.get("/deployments").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().unwrap().starts_with("/sign-in"));

        // However busy, a session ends at its lifetime (the hub's
        // session minutes, 60 by default) after sign-in.
        browser.sign_in("acme-admin").await;
        for minutes in (80..=130).step_by(10) {
            modelfleet_clock::set(&clock, at(minutes)).unwrap();
            let page = browser.get("/deployments").await;
            assert_eq!(page.status, StatusCode::OK, "at {minutes} min");
        }
        modelfleet_clock::set(&clock, at(132)).unwrap();
        let page = browser.get("/deployments").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "past the lifetime");
    })
    .await;
}
