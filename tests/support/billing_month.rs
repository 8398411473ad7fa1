//! The month the billing acceptance tests live through, in simulated time.
//!
//! The test process owns the simulated clock (a file, see
//! `modelfleet_clock`) and two sandbox clusters on two clouds; the hub runs
//! as a `modelfleet serve` subprocess reading the same clock, so that it
//! can be killed with SIGKILL and started again on the same data directory.
//! The clusters outlive the hub: its pods keep running while it is down,
//! as a real fleet's would.
//!
//! Every step is one request (or one fault) at one simulated instant. The
//! clock stands still until the hub's database shows the step's effect —
//! the replica intervals exactly as the scenario says, read from the
//! hub's SQLite file — and only then moves on. So every interval starts
//! and ends at a time written below, and the invoice can be computed by
//! hand from those times alone ([`expected_invoice`]).

#[path = "billing_month/alerts.rs"]
mod alerts;
#[path = "billing_month/clusters.rs"]
mod clusters;
#[path = "billing_month/hand.rs"]
mod hand;
#[path = "billing_month/hub.rs"]
mod hub;
#[path = "billing_month/invoice.rs"]
mod invoice;
#[path = "loops.rs"]
mod loops;

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use reqwest::StatusCode;
use serde_json::{Value, json};

use clusters::{ALIYUN, AWS, clusters, pods_on, ready};
pub use hand::{
    ALIYUN_ON_DEMAND, AWS_ON_DEMAND, AWS_ON_DEMAND_FROM_14TH, AWS_SPOT, expected_invoice, usd,
};
use hub::{Hub, Interval, interval, set_clock, wait_for};
pub use hub::{Mode, serial};
pub use invoice::assert_invoice_is_the_hand_computed_one;

pub const MODEL: &str = "llama-3.1-8b";
pub const ALPHA: &str = "alpha";
pub const BRAVO: &str = "bravo";

/// The scenario's instants (UTC).
pub fn at(day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, hour, minute, second)
        .single()
        .expect("a December 2026 time")
}

pub fn start() -> DateTime<Utc> {
    at(1, 0, 0, 0)
}
/// alpha scales 1 → 3.
pub fn scale_up() -> DateTime<Utc> {
    at(3, 12, 0, 0)
}
/// alpha scales 3 → 2: the newest replica lived 30 s, billed 60.
pub fn scale_back() -> DateTime<Utc> {
    at(3, 12, 0, 30)
}
/// alpha scales 2 → 1.
pub fn scale_down() -> DateTime<Utc> {
    at(10, 0, 0, 0)
}
/// The aws on-demand price changes.
pub fn price_change() -> DateTime<Utc> {
    at(14, 0, 0, 0)
}
/// bravo is deployed on the spot pool.
pub fn bravo_deployed() -> DateTime<Utc> {
    at(15, 0, 0, 0)
}
/// The aws on-demand node stops reporting ready.
pub fn node_down() -> DateTime<Utc> {
    at(20, 0, 0, 0)
}
/// Past the NodeLost grace (1.5 s): alpha's pod fails and its interval
/// closes. Not yet past `--failover-after-seconds` (4 s): a replacement pod
/// was unschedulable from the moment the node went down, and failover
/// must not move alpha before its old pod has failed (deleting the old
/// ModelDeployment first would leave that pod Terminating on the dead
/// node, holding its devices for good).
pub fn node_lost() -> DateTime<Utc> {
    at(20, 0, 0, 2)
}
/// Long past `--failover-after-seconds`: alpha moves to aliyun.
pub fn failed_over() -> DateTime<Utc> {
    at(20, 0, 10, 0)
}
/// bravo is deleted.
pub fn bravo_deleted() -> DateTime<Utc> {
    at(28, 0, 0, 0)
}
/// The invoice's month ends.
pub fn month_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().unwrap()
}
/// alpha is deleted, after the month ended.
pub fn alpha_deleted() -> DateTime<Utc> {
    month_end() + TimeDelta::minutes(30)
}
/// The invoice is read.
pub fn invoice_read() -> DateTime<Utc> {
    month_end() + TimeDelta::hours(1)
}

/// Where the SIGKILLs fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crashes {
    None,
    /// After the scale-up request, right after NodeLost becomes due,
    /// right after bravo's delete request, and after the month ended just
    /// before the invoice is read.
    Several,
}

/// What a run ends with.
#[derive(Debug)]
pub struct Outcome {
    pub alpha_devices: i128,
    pub bravo_devices: i128,
    pub intervals: Vec<Interval>,
    /// `None` when the invoice API is not there (404).
    pub invoice: Option<Value>,
    pub invoice_status: StatusCode,
    pub invoice_body: Value,
    /// After each kill of the hub that held the loops (`api`): how long
    /// each loop took to run again on another hub.
    pub moves: Vec<(
        String,
        std::collections::BTreeMap<String, std::time::Duration>,
    )>,
    /// `modelfleet audit verify` on the hub's database, after the month:
    /// its exit status and what it printed.
    pub audit_verified: (bool, String),
    /// With three hubs: every post of a budget alert to the tenant's
    /// webhook (a budget of [`BUDGET`]), and the thresholds of the alerts
    /// the hubs raised.
    pub alert_posts: Vec<alerts::Post>,
    pub alerts_raised: Vec<i64>,
}

/// The demo tenant's monthly budget in the three-hub month: its 80 % and
/// 100 % alerts are due by the scale-up on the 3rd (alpha's first 60
/// hours cost more than 100 USD), where the first kill moves the billing
/// loop — which the first hub to start holds until then — to another hub,
/// whose first pass raises them. (A pass on a later day of December would
/// too; one only in January would look at January's spend.)
pub const BUDGET: &str = "100.00 USD";

/// Lives through December 2026 and reads its invoice.
pub async fn run_month(crashes: Crashes, mode: Mode) -> Outcome {
    use reqwest::Method;
    let crash = crashes == Crashes::Several;
    set_clock(start());
    let dir = tempfile::tempdir().unwrap();
    let [(aws, aws_kubeconfig), (aliyun, aliyun_kubeconfig)] = clusters(dir.path()).await;
    let hub_dir = dir.path().join("hub");
    let mut hub = Hub::start(&hub_dir, mode.clone()).await;

    // December 1, 00:00. The admin registers both clusters and sets every
    // price of the month, the change on the 14th included.
    let admin = hub.admin().await;
    for (name, cloud, region, kubeconfig) in [
        (AWS, "aws", "us-east-1", &aws_kubeconfig),
        (ALIYUN, "aliyun", "cn-hangzhou", &aliyun_kubeconfig),
    ] {
        hub.expect(
            Method::POST,
            "/api/v1/clusters",
            &admin,
            Some(json!({"name": name, "cloud": cloud, "region": region, "kubeconfig": kubeconfig})),
            StatusCode::CREATED,
        )
        .await;
    }
    for (cloud, region, capacity, price, from) in [
        ("aws", "us-east-1", "on-demand", AWS_ON_DEMAND, None),
        (
            "aws",
            "us-east-1",
            "on-demand",
            AWS_ON_DEMAND_FROM_14TH,
            Some(price_change()),
        ),
        ("aws", "us-east-1", "spot", AWS_SPOT, None),
        ("aliyun", "cn-hangzhou", "on-demand", ALIYUN_ON_DEMAND, None),
    ] {
        let mut body = json!({"cloud": cloud, "region": region, "accelerator": "l40s",
                              "capacity": capacity, "pricePerDeviceHour": usd(price)});
        if let Some(from) = from {
            body["effectiveFrom"] = json!(from.to_rfc3339());
        }
        hub.expect(
            Method::POST,
            "/api/v1/prices",
            &admin,
            Some(body),
            StatusCode::CREATED,
        )
        .await;
    }

    // The demo tenant deploys alpha, pinned to the aws on-demand pool.
    let key = hub.credentials()["api_key"].clone();
    let created = hub
        .expect(
            Method::POST,
            "/api/v1/deployments",
            &key,
            Some(json!({"name": ALPHA, "model": MODEL, "replicas": 1,
                        "placement": {"accelerators": ["l40s"], "pool": format!("{AWS}/od")}})),
            StatusCode::ACCEPTED,
        )
        .await;
    let alpha_id = created["deployment"]["id"].as_str().unwrap().to_owned();
    let tenant = created["deployment"]["tenant"].as_str().unwrap().to_owned();
    let alpha_devices = created["deployment"]["devicesPerReplica"].as_i64().unwrap();
    let mut want = vec![interval(ALPHA, AWS, "od", alpha_devices, start(), None)];
    hub.wait_for_intervals("alpha was deployed", &want, &[&aws, &aliyun])
        .await;
    // With three hubs, a budget whose alerts go to a webhook: each must
    // reach it exactly once whichever hub holds the billing loop.
    let receiver = match mode {
        Mode::Api { .. } => {
            let receiver = alerts::Receiver::start().await;
            hub.expect(
                Method::PUT,
                &format!("/api/v1/tenants/{tenant}/budget"),
                &key,
                Some(json!({"amount": BUDGET, "webhookUrl": receiver.url,
                            "webhookSecret": "a-receiver-secret-of-the-month"})),
                StatusCode::OK,
            )
            .await;
            Some(receiver)
        }
        Mode::Serve => None,
    };

    // December 3, 12:00: alpha scales to 3.
    set_clock(scale_up());
    let alpha = format!("/api/v1/deployments/{alpha_id}");
    hub.expect(
        Method::PATCH,
        &alpha,
        &key,
        Some(json!({"replicas": 3})),
        StatusCode::OK,
    )
    .await;
    if crash {
        hub.kill_and_restart("right after the scale-up request")
            .await;
    }
    want.push(interval(ALPHA, AWS, "od", alpha_devices, scale_up(), None));
    want.push(interval(ALPHA, AWS, "od", alpha_devices, scale_up(), None));
    hub.wait_for_intervals("alpha scaled to 3", &want, &[&aws, &aliyun])
        .await;

    // 30 seconds later, back to 2: the newest replica goes.
    set_clock(scale_back());
    hub.expect(
        Method::PATCH,
        &alpha,
        &key,
        Some(json!({"replicas": 2})),
        StatusCode::OK,
    )
    .await;
    want[2].to = Some(scale_back());
    hub.wait_for_intervals("alpha scaled back to 2", &want, &[&aws, &aliyun])
        .await;

    // December 10: down to 1.
    set_clock(scale_down());
    hub.expect(
        Method::PATCH,
        &alpha,
        &key,
        Some(json!({"replicas": 1})),
        StatusCode::OK,
    )
    .await;
    want[1].to = Some(scale_down());
    hub.wait_for_intervals("alpha scaled down to 1", &want, &[&aws, &aliyun])
        .await;

    // December 15 (the new aws price has been in force since the 14th):
    // bravo on the spot pool.
    set_clock(bravo_deployed());
    let created = hub
        .expect(
            Method::POST,
            "/api/v1/deployments",
            &key,
            Some(json!({"name": BRAVO, "model": MODEL, "replicas": 1,
                        "placement": {"accelerators": ["l40s"], "pool": format!("{AWS}/spot"),
                                      "spot": "allowed"}})),
            StatusCode::ACCEPTED,
        )
        .await;
    let bravo_id = created["deployment"]["id"].as_str().unwrap().to_owned();
    let bravo_devices = created["deployment"]["devicesPerReplica"].as_i64().unwrap();
    want.push(interval(
        BRAVO,
        AWS,
        "spot",
        bravo_devices,
        bravo_deployed(),
        None,
    ));
    hub.wait_for_intervals("bravo was deployed", &want, &[&aws, &aliyun])
        .await;

    // December 20: the aws on-demand node stops reporting ready. (A
    // replacement pod appears at once and cannot be placed: the hub
    // records alpha unschedulable from now.) Its pod
    // must have been ready (so that losing it shows), and the kubelet must
    // have seen the node down now, before the clock moves past the grace.
    set_clock(node_down());
    let aws_ref = &aws;
    wait_for(
        "alpha's pod on the aws on-demand node to be ready",
        Some(&hub),
        || async move {
            let pods = pods_on(aws_ref, "od-").await;
            let states: Vec<_> = pods.iter().map(ready).collect();
            if pods.len() == 1 && states[0].as_deref() == Some("True") {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    )
    .await;
    for node in aws.nodes.nodes().iter().filter(|n| n.starts_with("od-")) {
        aws.nodes
            .node_not_ready(node)
            .await
            .expect("the node fault applies");
    }
    wait_for(
        "alpha's pod to lose its Ready condition",
        Some(&hub),
        || async move {
            let pods = pods_on(aws_ref, "od-").await;
            let states: Vec<_> = pods.iter().map(ready).collect();
            if states.iter().all(|s| s.as_deref() == Some("False")) && !states.is_empty() {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    )
    .await;

    // Two seconds later the NodeLost grace has passed, and alpha's pod on
    // the dead node is removed the way an operator removes pods of a lost
    // node (`kubectl delete pod --force --grace-period=0`). Without that
    // the run would not be deterministic: the kubelet marks the pod Failed
    // (NodeLost) about now, but the operator re-rolls alpha's Deployment
    // when the node goes down, and if that rollout deletes the not-ready
    // pod first, the pod stays Terminating on the NotReady node for good
    // and its interval never ends. And while a Failed pod is there, the
    // operator reports PodFailed rather than Unschedulable, so failover
    // would never look at alpha. Either way the hub sees the pod end now.
    set_clock(node_lost());
    if crash {
        hub.kill_and_restart("as NodeLost becomes due, before failover")
            .await;
    }
    for pod in pods_on(&aws, "od-").await {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let force = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match Api::<Pod>::namespaced(aws.client(), &namespace)
            .delete(&name, &force)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("the pod {namespace}/{name} of the lost node is not deleted: {e}"),
        }
    }
    want[0].to = Some(node_lost());
    hub.wait_for_intervals("alpha's node was lost", &want, &[&aws, &aliyun])
        .await;
    let hub_ref = &hub;
    wait_for(
        "the hub to see alpha unschedulable",
        Some(&hub),
        || async move {
            match hub_ref.placement(ALPHA).await {
                (cluster, Some(_)) if cluster == AWS => Ok(()),
                seen => Err(format!("{seen:?}\n{}", hub_ref.history().await)),
            }
        },
    )
    .await;

    // Ten minutes on: failover moves alpha to aliyun.
    set_clock(failed_over());
    want.push(interval(
        ALPHA,
        ALIYUN,
        "od",
        alpha_devices,
        failed_over(),
        None,
    ));
    hub.wait_for_intervals("alpha failed over to aliyun", &want, &[&aws, &aliyun])
        .await;

    // December 28: bravo is deleted.
    set_clock(bravo_deleted());
    hub.expect(
        Method::DELETE,
        &format!("/api/v1/deployments/{bravo_id}"),
        &key,
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    if crash {
        hub.kill_and_restart("right after bravo's delete request")
            .await;
    }
    want[3].to = Some(bravo_deleted());
    hub.wait_for_intervals("bravo was deleted", &want, &[&aws, &aliyun])
        .await;

    // January 1, 00:30: alpha is deleted, its last interval crossing the
    // month's end.
    set_clock(alpha_deleted());
    hub.expect(Method::DELETE, &alpha, &key, None, StatusCode::ACCEPTED)
        .await;
    want[4].to = Some(alpha_deleted());
    hub.wait_for_intervals("alpha was deleted", &want, &[&aws, &aliyun])
        .await;

    // 01:00: December's invoice.
    set_clock(invoice_read());
    if crash {
        hub.kill_and_restart("after the month ended, before the invoice is read")
            .await;
    }
    let (invoice_status, invoice_body, invoice) = invoice::invoice(&hub, &key, &tenant).await;
    let intervals = hub.intervals().await;
    let (alert_posts, alerts_raised) = match &receiver {
        Some(receiver) => {
            let alerts_path = format!("/api/v1/tenants/{tenant}/budget/alerts");
            let (hub_ref, key_ref, path) = (&hub, &key, &alerts_path);
            // Raised by a billing pass (every 30 s on its holder) and
            // delivered beside it.
            let raised = wait_for(
                "both budget alerts to be delivered",
                Some(&hub),
                || async move {
                    let (_, list) = hub_ref.call(Method::GET, path, key_ref, None).await;
                    let items = list["items"].as_array().cloned().unwrap_or_default();
                    let posted = receiver.posts();
                    if items.len() == 2 && posted.len() >= 2 {
                        let mut thresholds: Vec<i64> = items
                            .iter()
                            .filter_map(|a| a["threshold"].as_i64())
                            .collect();
                        thresholds.sort();
                        Ok(thresholds)
                    } else {
                        Err(format!("{list:#}\nposted: {posted:?}"))
                    }
                },
            )
            .await;
            (receiver.posts(), raised)
        }
        None => (Vec::new(), Vec::new()),
    };
    let moves = std::mem::take(&mut hub.moves);

    drop(hub);
    let audit_verified = verify_audit(&mode, &hub_dir);
    aws.shutdown().await;
    aliyun.shutdown().await;
    Outcome {
        alpha_devices: alpha_devices.into(),
        bravo_devices: bravo_devices.into(),
        intervals,
        invoice,
        invoice_status,
        invoice_body,
        moves,
        audit_verified,
        alert_posts,
        alerts_raised,
    }
}

/// `modelfleet audit verify` on the month's database.
fn verify_audit(mode: &Mode, data_dir: &std::path::Path) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_modelfleet"));
    command.args(["audit", "verify"]);
    match mode {
        Mode::Serve => command.arg("--data-dir").arg(data_dir),
        Mode::Api { database_url } => command.arg("--database-url").arg(database_url),
    };
    let out = command
        .env_remove("MODELFLEET_DATABASE_URL")
        .output()
        .expect("modelfleet audit verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asserts the replica intervals are the scenario's (as the waits already
/// did step by step; once more, whole, at the end).
pub fn assert_intervals_are_the_scenarios(outcome: &Outcome) {
    let (a, b) = (
        i64::try_from(outcome.alpha_devices).unwrap(),
        i64::try_from(outcome.bravo_devices).unwrap(),
    );
    let mut want = vec![
        interval(ALPHA, AWS, "od", a, start(), Some(node_lost())),
        interval(ALPHA, AWS, "od", a, scale_up(), Some(scale_down())),
        interval(ALPHA, AWS, "od", a, scale_up(), Some(scale_back())),
        interval(
            BRAVO,
            AWS,
            "spot",
            b,
            bravo_deployed(),
            Some(bravo_deleted()),
        ),
        interval(ALPHA, ALIYUN, "od", a, failed_over(), Some(alpha_deleted())),
    ];
    want.sort();
    assert_eq!(outcome.intervals, want);
}
