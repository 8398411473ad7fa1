//! `modelfleet serve` started in process for the end-to-end tests, on a
//! loopback port of its own, with the sandbox clusters' time sped up.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use modelfleet::hub::{CREDENTIALS_FILE, HubOptions, RunningHub};

/// Starts the hub on `data_dir`: simulated time at 0.002 of real time, the
/// operator requeueing every 300 ms, so a deployment is Ready in seconds.
/// The directory is made its owner's alone first, as `serve` requires (a
/// test's temporary directory is created open to others).
pub async fn start(data_dir: &Path) -> RunningHub {
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .expect("the data directory can be made private");
    let mut options = HubOptions::new(data_dir, ([127, 0, 0, 1], 0).into());
    options.time_factor = 0.002;
    options.requeue = Duration::from_millis(300);
    RunningHub::start(options).await.expect("serve starts")
}

/// The first start's credentials file: `name=value` lines.
pub fn credentials(data_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(data_dir.join(CREDENTIALS_FILE)).unwrap();
    text.lines()
        .map(|line| {
            let (name, value) = line.split_once('=').expect("name=value lines");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}
