//! The MLPS 2.0 (等保2.0) level-3 report: each item of GB/T 22239-2019
//! §8.1.4 the control plane can speak to, evaluated against the running
//! system (accounts, sealed secrets, the audit chain, its exports and the
//! hub's settings), with the evidence found.
//!
//! An item passes only on evidence the system itself can show; where the
//! requirement depends on how the hub is run (TLS in front of it, one
//! account per person), it says what to bring as manual evidence instead of
//! claiming a pass.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::clusters::rights::Excess;
use crate::config::ApiSettings;
use crate::identity::password::MIN_LENGTH;
use crate::identity::{Actor, Permission, Role};
use crate::store::{ChainReport, ComplianceFacts, LoginPolicy, Store, StoreError};

pub const STANDARD: &str =
    "GB/T 22239-2019 信息安全技术 网络安全等级保护基本要求 — level 3 (第三级), §8.1.4 安全计算环境";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ItemStatus {
    Pass,
    Fail,
    /// The system cannot show it; the operator must.
    NeedsManualEvidence,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportItem {
    pub id: String,
    pub requirement_zh: String,
    pub requirement_en: String,
    pub status: ItemStatus,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    pub standard: String,
    pub generated_at: DateTime<Utc>,
    pub passed: usize,
    pub failed: usize,
    pub needs_manual_evidence: usize,
    pub items: Vec<ReportItem>,
}

/// What the report needs besides the database.
#[derive(Debug, Clone)]
pub struct ReportContext<'a> {
    pub settings: &'a ApiSettings,
    pub login_policy: LoginPolicy,
    /// Where audit exports go, if anywhere (`file://…`, `s3://…`).
    pub export_location: Option<&'a str>,
    /// Each registered cluster's name and what the hub's kubeconfig may do
    /// there beyond what it needs; `None` where the report runs without
    /// the hub's live connections (`modelfleet audit report`).
    pub cluster_rights: Option<Vec<(String, Excess)>>,
}

/// Reads the live system and evaluates every item. Auditors and platform
/// admins only.
pub async fn evaluate(
    store: &Store,
    actor: &Actor,
    context: &ReportContext<'_>,
) -> Result<ComplianceReport, StoreError> {
    actor
        .check_role(Permission::ReadAudit)
        .map_err(|_| StoreError::Forbidden)?;
    let facts = store.compliance_facts(actor).await?;
    let chain = store.verify_audit().await?;
    Ok(report(&facts, &chain, context, crate::store::now()))
}

fn item(id: &str, zh: &str, en: &str, status: ItemStatus, evidence: Vec<String>) -> ReportItem {
    ReportItem {
        id: id.to_owned(),
        requirement_zh: zh.to_owned(),
        requirement_en: en.to_owned(),
        status,
        evidence,
    }
}

fn pass_if(ok: bool) -> ItemStatus {
    if ok {
        ItemStatus::Pass
    } else {
        ItemStatus::Fail
    }
}

/// The report from facts already read: a pure function, tested directly.
pub fn report(
    facts: &ComplianceFacts,
    chain: &ChainReport,
    context: &ReportContext<'_>,
    now: DateTime<Utc>,
) -> ComplianceReport {
    let settings = context.settings;
    let policy = context.login_policy;
    let mut items = Vec::new();

    items.push(item(
        "L3-CES1-01",
        "应对登录的用户进行身份标识和鉴别，身份标识具有唯一性，身份鉴别信息具有复杂度要求并定期更换。",
        "Identify and authenticate every user who signs in; identities are unique; credentials meet complexity rules and are changed regularly.",
        ItemStatus::Pass,
        vec![
            format!("{} accounts, user names unique (enforced by a UNIQUE constraint)", facts.accounts.len()),
            format!("passwords need at least {MIN_LENGTH} characters and are stored as argon2id hashes"),
            "API keys are stored as hashes; the token is shown once".to_owned(),
        ],
    ));

    items.push(item(
        "L3-CES1-02",
        "应具有登录失败处理功能，应配置并启用结束会话、限制非法登录次数和当登录连接超时自动退出等相关措施。",
        "Handle failed sign-ins: end sessions, limit failed attempts, and sign out automatically when a session times out.",
        ItemStatus::Pass,
        vec![
            format!(
                "an account locks for {} minutes after {} failed sign-ins in a row",
                policy.lockout.num_minutes(),
                policy.max_failures
            ),
            format!("sessions end {} minutes after sign-in; signing out revokes the session", settings.session_minutes),
            rate_limits(settings),
            "every sign-in and lockout is an audit record, and every failed sign-in too; those \
             from one address within a minute of its first as one record with their count"
                .to_owned(),
            "an administrator can unlock an account, or end all of a person's sessions at once; ended sessions are purged".to_owned(),
        ],
    ));

    items.push(item(
        "L3-CES1-03",
        "当进行远程管理时，应采取必要措施防止鉴别信息在网络传输过程中被窃听。",
        "Protect credentials from eavesdropping during remote administration.",
        ItemStatus::NeedsManualEvidence,
        vec![
            "the hub serves plain HTTP on its listener; provide evidence that TLS terminates in front of it (ingress or load balancer certificate)".to_owned(),
        ],
    ));

    let needs_factor: Vec<_> = facts
        .accounts
        .iter()
        .filter(|a| a.role.needs_second_factor() && !a.expired)
        .collect();
    let lacking = needs_factor.iter().filter(|a| !a.totp_enabled).count();
    let enforced = &settings.second_factor_roles;
    let staff_enforced = enforced.contains(Role::PlatformAdmin) && enforced.contains(Role::Auditor);
    items.push(item(
        "L3-CES1-04",
        "应采用口令、密码技术、生物技术等两种或两种以上组合的鉴别技术对用户进行身份鉴别，且其中一种鉴别技术至少应使用密码技术来实现。",
        "Authenticate administrators with two or more factors, at least one of them cryptographic (e.g. TOTP).",
        pass_if(lacking == 0 && staff_enforced),
        vec![
            format!(
                "{lacking} of {} administrators and auditors lack TOTP",
                needs_factor.len()
            ),
            format!(
                "the API requires a second factor of these roles (--second-factor-roles): {enforced}; \
                 a tenant can require it of its own roles too; until such a person enrols, their \
                 session can only enrol and sign out"
            ),
            "resetting a person's second factor takes the acting administrator's own".to_owned(),
        ],
    ));

    let expired_active = facts.accounts.iter().filter(|a| a.expired).count();
    let defaults: Vec<&str> = facts
        .accounts
        .iter()
        .filter(|a| a.role == Role::PlatformAdmin && a.initial_password && !a.expired)
        .map(|a| a.username.as_str())
        .collect();
    let auditors = facts
        .accounts
        .iter()
        .filter(|a| a.role == Role::Auditor && !a.expired)
        .count();
    let mut evidence = vec![
        "roles: platform-admin, tenant-admin, developer, auditor, viewer; one role per account"
            .to_owned(),
        format!(
            "{auditors} auditor accounts; the auditor role reads the audit trail and changes nothing"
        ),
        format!("{expired_active} expired or disabled accounts (refused at sign-in)"),
        "administrators disable, delete and change the role of accounts; nobody can raise a role above their own or change their own".to_owned(),
        "the first-start platform admin must choose a new password at first sign-in".to_owned(),
    ];
    if defaults.is_empty() {
        evidence.push("no platform admin still uses its first-start password".to_owned());
    } else {
        evidence.push(format!(
            "platform admins still on their first-start password: {}",
            defaults.join(", ")
        ));
    }
    evidence.push("that each account belongs to one person needs manual evidence".to_owned());
    let clusters_least = cluster_rights(context, &mut evidence);
    items.push(item(
        "L3-CES1-05..10",
        "应对登录的用户分配账户和权限；应重命名或删除默认账户，修改默认账户的默认口令；应及时删除或停用多余的、过期的账户，避免共享账户的存在；应授予管理用户所需的最小权限，实现管理用户的权限分离。",
        "Assign accounts and permissions; rename or remove default accounts and change default passwords; remove or disable surplus and expired accounts, avoid shared accounts; grant least privilege and separate the duties of administrators.",
        pass_if(defaults.is_empty() && auditors > 0 && clusters_least),
        evidence,
    ));

    let since = facts
        .first_record_at
        .map(|t| format!(", the first at {}", t.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    items.push(item(
        "L3-CES1-12",
        "应启用安全审计功能，审计覆盖到每个用户，对重要的用户行为和重要安全事件进行审计。",
        "Auditing is on, covers every user, and records important user actions and security events.",
        pass_if(facts.audit_records > 0),
        vec![
            format!("{} audit records{since}", facts.audit_records),
            "every change through the API, the console and cluster sync (kubectl-applied deployments) is recorded in the transaction that makes it; refused requests, sign-ins, lockouts and failovers too (refusals before authentication from one address within a minute of its first as one record with their count)".to_owned(),
        ],
    ));

    items.push(item(
        "L3-CES1-13",
        "审计记录应包括事件的日期和时间、用户、事件类型、事件是否成功及其他与审计相关的信息。",
        "Each record has the date and time, the user, the event type, success or failure, and other relevant detail.",
        ItemStatus::Pass,
        vec![
            "records are Kubernetes audit.k8s.io/v1 Events: requestReceivedTimestamp, stageTimestamp, user, verb, objectRef, responseStatus (code, Success/Failure), sourceIPs, userAgent, auditID".to_owned(),
            "time, user, event type and outcome are NOT NULL columns".to_owned(),
        ],
    ));

    let triggers_on = facts.audit_triggers.len() >= 2;
    let mut evidence = vec![
        if chain.intact() {
            format!("chain verified up to record {}", chain.verified_through)
        } else {
            format!(
                "chain BROKEN: {}",
                chain
                    .broken
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )
        },
        if triggers_on {
            format!(
                "append-only triggers on: {}",
                facts.audit_triggers.join(", ")
            )
        } else {
            "append-only triggers are missing or disabled".to_owned()
        },
    ];
    match &facts.last_export {
        Some((at, location, seq)) => evidence.push(format!(
            "{} exports with signed digests; the last through record {seq}, at {} to {location}",
            facts.exports,
            at.format("%Y-%m-%d %H:%M UTC")
        )),
        None => evidence.push("no export to object storage yet".to_owned()),
    }
    items.push(item(
        "L3-CES1-14",
        "应对审计记录进行保护，定期备份，避免受到未预期的删除、修改或覆盖等。",
        "Protect audit records and back them up regularly against deletion, modification or overwriting.",
        pass_if(chain.intact() && triggers_on && facts.last_export.is_some()),
        evidence,
    ));

    items.push(item(
        "L3-CES1-15",
        "应对审计进程进行保护，防止未经授权的中断。",
        "Protect the audit process from interruption by unauthorised users.",
        ItemStatus::Pass,
        vec![
            "auditing cannot be turned off: a change whose record cannot be written is rolled back".to_owned(),
            format!(
                "audit settings (retention {} days, exports every {} hours) are set only in the hub's configuration, not through the API",
                settings.audit_retention_days, settings.audit_export_every_hours
            ),
        ],
    ));

    items.push(item(
        "L3-CES1-25/26",
        "应采用校验技术或密码技术保证重要数据在传输过程中和存储过程中的完整性，包括鉴别数据、重要业务数据、重要审计数据和重要配置数据等。",
        "Protect the integrity of authentication, business, audit and configuration data in transit and at rest.",
        if chain.intact() && facts.signing_key {
            ItemStatus::NeedsManualEvidence
        } else {
            ItemStatus::Fail
        },
        vec![
            "audit records are SHA-256 hash-chained; exports carry Ed25519-signed digests".to_owned(),
            if facts.signing_key {
                "the platform's audit signing key exists".to_owned()
            } else {
                "no audit signing key yet (made by the first export)".to_owned()
            },
            "integrity in transit depends on TLS in front of the hub: manual evidence".to_owned(),
        ],
    ));

    items.push(item(
        "L3-CES1-27/28",
        "应采用密码技术保证重要数据在传输过程中和存储过程中的保密性，包括鉴别数据、重要业务数据和重要个人信息等。",
        "Encrypt authentication and business data in transit and at rest.",
        ItemStatus::Pass,
        vec![
            format!(
                "{} kubeconfigs encrypted at rest (AES-256-GCM, key kept outside the database)",
                facts.sealed_kubeconfigs
            ),
            "passwords as argon2id hashes, API keys and session tokens as SHA-256 digests".to_owned(),
        ],
    ));

    let offsite = context
        .export_location
        .is_some_and(|l| l.starts_with("s3://"));
    items.push(item(
        "L3-CES1-29..31",
        "应提供重要数据的本地数据备份与恢复功能；应提供异地实时备份功能；应提供重要数据处理系统的热冗余，保证系统的高可用性。",
        "Back up and restore important data locally; back it up off-site; run redundant systems for high availability.",
        pass_if(offsite && facts.last_export.is_some()),
        vec![
            match context.export_location {
                Some(l) if offsite => format!("audit exports go to object storage: {l}"),
                Some(l) => format!("audit exports go to a local directory ({l}); configure an S3-compatible store in another region"),
                None => "no export target configured".to_owned(),
            },
            "the hub keeps no state of its own: run several replicas against a managed PostgreSQL (manual evidence)".to_owned(),
        ],
    ));

    let oldest_days = facts.first_record_at.map_or(0, |t| (now - t).num_days());
    items.push(item(
        "CSL-21",
        "《网络安全法》第二十一条：采取监测、记录网络运行状态、网络安全事件的技术措施，并按照规定留存相关的网络日志不少于六个月。",
        "Cybersecurity Law, Article 21: record network operation and security events and keep the logs for at least six months.",
        pass_if(settings.audit_retention_days >= crate::config::MIN_AUDIT_RETENTION_DAYS),
        vec![
            format!("audit retention {} days", settings.audit_retention_days),
            format!("the oldest record in the database is {oldest_days} days old; records are pruned only after export"),
        ],
    ));

    let count = |s: ItemStatus| items.iter().filter(|i| i.status == s).count();
    ComplianceReport {
        standard: STANDARD.to_owned(),
        generated_at: now,
        passed: count(ItemStatus::Pass),
        failed: count(ItemStatus::Fail),
        needs_manual_evidence: count(ItemStatus::NeedsManualEvidence),
        items,
    }
}

/// What limits sign-in attempts beyond the lockout, as evidence.
/// Evidence on the hub's own rights in its clusters; false when a
/// kubeconfig can do more than the hub needs.
fn cluster_rights(context: &ReportContext<'_>, evidence: &mut Vec<String>) -> bool {
    let Some(clusters) = &context.cluster_rights else {
        evidence.push(
            "the hub's rights in its clusters are checked only by the running hub (GET /api/v1/compliance/report)"
                .to_owned(),
        );
        return true;
    };
    let mut least = true;
    for (cluster, rights) in clusters {
        evidence.push(match rights {
            Ok(excess) if excess.is_empty() => format!(
                "cluster {cluster}: the hub's kubeconfig has exactly the rights of manifests/hub-member/"
            ),
            Ok(excess) => {
                least = false;
                format!(
                    "cluster {cluster}: the hub's kubeconfig can do more than it needs ({}); register one for the modelfleet-hub ServiceAccount of manifests/hub-member/",
                    excess.join(", ")
                )
            }
            Err(why) => format!("cluster {cluster}: {why}"),
        });
    }
    least
}

fn rate_limits(settings: &ApiSettings) -> String {
    let limit = |burst: u32, seconds: u32| {
        if burst == 0 {
            "no limit".to_owned()
        } else {
            format!("{burst} at once, then one every {seconds} s")
        }
    };
    format!(
        "sign-ins per client address: {}; failed sign-ins per account: {}; refused \
         credentials per client address: {} (then 429)",
        limit(settings.sign_in_burst, settings.sign_in_refill_seconds),
        limit(
            settings.sign_in_account_burst,
            settings.sign_in_account_refill_seconds
        ),
        limit(
            settings.auth_failure_burst,
            settings.auth_failure_refill_seconds
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AccountFacts;

    fn facts() -> ComplianceFacts {
        let account = |name: &str, role, totp| AccountFacts {
            username: name.into(),
            role,
            totp_enabled: totp,
            expired: false,
            initial_password: false,
        };
        ComplianceFacts {
            accounts: vec![
                account("admin", Role::PlatformAdmin, true),
                account("ops", Role::PlatformAdmin, false),
                account("audit", Role::Auditor, false),
                account("dev", Role::Developer, false),
            ],
            sealed_kubeconfigs: 3,
            audit_records: 18_204,
            first_record_at: Some("2026-11-01T00:00:00Z".parse().unwrap()),
            last_record_at: Some("2026-11-29T00:00:00Z".parse().unwrap()),
            audit_triggers: vec![
                "audit_records_no_delete".into(),
                "audit_records_no_update".into(),
            ],
            exports: 2,
            last_export: Some((
                "2026-11-28T00:00:00Z".parse().unwrap(),
                "s3://audit/hub".into(),
                18_000,
            )),
            signing_key: true,
        }
    }

    fn chain(broken: bool) -> ChainReport {
        ChainReport {
            checked: 18_204,
            verified_through: 18_204,
            from_checkpoint: 0,
            head: 18_204,
            broken: broken.then_some(modelfleet_core::audit::ChainBreak::Altered { seq: 7 }),
        }
    }

    fn find<'a>(r: &'a ComplianceReport, id: &str) -> &'a ReportItem {
        r.items.iter().find(|i| i.id == id).unwrap()
    }

    #[test]
    fn items_follow_the_evidence() {
        let settings = ApiSettings::default();
        let context = ReportContext {
            settings: &settings,
            login_policy: LoginPolicy::default(),
            export_location: Some("s3://audit/hub"),
            cluster_rights: None,
        };
        let now = "2026-11-29T12:00:00Z".parse().unwrap();
        let r = report(&facts(), &chain(false), &context, now);
        let totp = find(&r, "L3-CES1-04");
        assert_eq!(totp.status, ItemStatus::Fail);
        assert_eq!(
            totp.evidence[0],
            "2 of 3 administrators and auditors lack TOTP"
        );
        assert!(
            totp.evidence[1].contains("platform-admin,auditor"),
            "{:?}",
            totp.evidence
        );
        let protect = find(&r, "L3-CES1-14");
        assert_eq!(protect.status, ItemStatus::Pass);
        assert_eq!(protect.evidence[0], "chain verified up to record 18204");
        assert_eq!(find(&r, "CSL-21").evidence[0], "audit retention 184 days");
        assert_eq!(find(&r, "L3-CES1-29..31").status, ItemStatus::Pass);
        assert_eq!(r.passed + r.failed + r.needs_manual_evidence, r.items.len());

        let broken = report(&facts(), &chain(true), &context, now);
        assert_eq!(find(&broken, "L3-CES1-14").status, ItemStatus::Fail);
        assert!(find(&broken, "L3-CES1-14").evidence[0].contains("record 7"));

        let local = ReportContext {
            export_location: Some("file:///var/lib/modelfleet/audit"),
            ..context.clone()
        };
        let r = report(&facts(), &chain(false), &local, now);
        assert_eq!(find(&r, "L3-CES1-29..31").status, ItemStatus::Fail);
        let mut f = facts();
        for a in &mut f.accounts {
            a.totp_enabled = true;
        }
        f.accounts[0].initial_password = true;
        let r = report(&f, &chain(false), &context, now);
        assert_eq!(find(&r, "L3-CES1-04").status, ItemStatus::Pass);
        let access = find(&r, "L3-CES1-05..10");
        assert_eq!(access.status, ItemStatus::Fail);
        assert!(
            access
                .evidence
                .iter()
                .any(|e| e.contains("first-start password: admin"))
        );
    }

    /// A cluster whose kubeconfig can do more than the hub needs fails the
    /// least-privilege item, naming the cluster and the rights.
    #[test]
    fn a_kubeconfig_with_excess_rights_fails_least_privilege() {
        let settings = ApiSettings::default();
        let now = "2026-11-29T12:00:00Z".parse().unwrap();
        let context = |rights: Vec<(String, Excess)>| ReportContext {
            settings: &settings,
            login_policy: LoginPolicy::default(),
            export_location: Some("s3://audit/hub"),
            cluster_rights: Some(rights),
        };
        let least = report(
            &facts_without_defaults(),
            &chain(false),
            &context(vec![("aws-a".into(), Ok(Vec::new()))]),
            now,
        );
        assert_eq!(find(&least, "L3-CES1-05..10").status, ItemStatus::Pass);
        let admin = report(
            &facts_without_defaults(),
            &chain(false),
            &context(vec![
                ("aws-a".into(), Ok(Vec::new())),
                ("ali-b".into(), Ok(vec!["* *.*".into()])),
            ]),
            now,
        );
        let item = find(&admin, "L3-CES1-05..10");
        assert_eq!(item.status, ItemStatus::Fail);
        assert!(
            item.evidence.iter().any(|e| e
                .starts_with("cluster ali-b: the hub's kubeconfig can do more")
                && e.contains("* *.*")),
            "{:?}",
            item.evidence
        );
    }

    fn facts_without_defaults() -> ComplianceFacts {
        let mut f = facts();
        for a in &mut f.accounts {
            a.initial_password = false;
        }
        f
    }
}
