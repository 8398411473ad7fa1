//! Which hub holds which background loop, read from PostgreSQL's own view
//! of its advisory locks and the sessions that hold them (each hub names
//! its lock sessions `modelfleet-hub <host>/<pid> <loop>`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The loops every hub of a shared PostgreSQL elects one holder for.
pub const LOOPS: [&str; 6] = [
    "audit-export",
    "audit-prune",
    "billing",
    "cluster-sync",
    "failover",
    "session-purge",
];

/// Which hub process (by pid) holds each loop now, from PostgreSQL's own
/// view of its advisory locks and their sessions.
pub async fn holders(admin: &mut sqlx::PgConnection) -> BTreeMap<String, u32> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() \
           AND a.application_name LIKE 'modelfleet-hub %'",
    )
    .fetch_all(admin)
    .await
    .unwrap();
    let mut held = BTreeMap::new();
    for (name,) in rows {
        // "modelfleet-hub <host>/<pid> <loop>"
        let mut words = name.split(' ').skip(1);
        let (identity, loop_name) = (words.next().unwrap(), words.next().unwrap());
        let pid = identity.rsplit('/').next().unwrap().parse().unwrap();
        assert!(
            held.insert(loop_name.to_owned(), pid).is_none(),
            "{loop_name} held twice"
        );
    }
    held
}

/// Waits until every loop is held by one of `alive`, and returns when each
/// got there (since `from`).
pub async fn until_all_held(
    admin: &mut sqlx::PgConnection,
    alive: &[u32],
    from: Instant,
) -> BTreeMap<String, (u32, Duration)> {
    let mut moved: BTreeMap<String, (u32, Duration)> = BTreeMap::new();
    loop {
        for (name, pid) in holders(admin).await {
            if alive.contains(&pid) {
                moved.entry(name).or_insert((pid, from.elapsed()));
            }
        }
        if LOOPS.iter().all(|l| moved.contains_key(*l)) {
            return moved;
        }
        assert!(
            from.elapsed() < Duration::from_secs(15),
            "after 15 s only these loops run on a live hub: {moved:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
