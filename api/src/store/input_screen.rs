//! A tenant's input screen in the database: what the inference gateway
//! refuses before a prompt reaches a model (issue 20, part 7). Tenant
//! admins of the tenant and platform admins set it; anyone of the tenant
//! reads it. The rules that keep a screen cheap to run — how many deny
//! patterns, how long, how large compiled — are here, so nothing that
//! breaks them is ever stored; the gateway compiles what is stored with
//! [`deny_set`]. A classifier's signing secret is sealed by the keyring
//! (as budget webhooks' secrets) and opened only for the gateway
//! ([`Store::input_screen_opened`]); [`InputScreen`] says only whether
//! there is one.

use chrono::{DateTime, Utc};
use regex::{RegexSet, RegexSetBuilder};
use serde::Serialize;

use super::budgets::check_webhook_url;
use super::{Store, StoreError, Tx, now, on_conn, visible};
use crate::identity::{Permission, Scope};
use crate::ids::TenantId;
use crate::secret::{Keyring, Sealed, Secret};

/// The most deny patterns a tenant may set.
pub const MAX_DENY_PATTERNS: usize = 64;
/// The longest deny pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 256;
/// The most memory all of a tenant's patterns may compile to: the
/// `regex` crate refuses to build a larger program, so no pattern
/// (`x{1000}{1000}`, a huge Unicode class) can make every request slow.
pub const PATTERNS_SIZE_LIMIT: usize = 512 << 10;
/// The lazy DFA's cache per search thread, for all patterns.
const PATTERNS_DFA_LIMIT: usize = 1 << 20;
/// How deeply a pattern may nest groups and repetitions.
const PATTERNS_NEST_LIMIT: u32 = 32;
/// The largest `maxPromptBytes`: beyond it, a limit means nothing the
/// gateway's body limit does not already say.
pub const MAX_PROMPT_BYTES_LIMIT: u64 = 64 << 20;
/// The shortest classifier signing secret, in characters (as budget
/// webhooks').
pub const MIN_CLASSIFIER_SECRET_CHARS: usize = 16;
/// The longest classifier signing secret, in characters.
pub const MAX_CLASSIFIER_SECRET_CHARS: usize = 256;

/// A tenant's input screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputScreen {
    pub tenant: TenantId,
    /// The largest prompt text, in UTF-8 bytes; `None`: no limit.
    pub max_prompt_bytes: Option<u64>,
    /// Regular expressions (the `regex` crate's syntax), matched
    /// case-insensitively anywhere in the prompt text.
    pub deny_patterns: Vec<String>,
    /// Where the prompt text is posted to be judged; `None`: no classifier.
    pub classifier_url: Option<String>,
    /// Whether the classifier's posts are signed: a secret is stored with
    /// its URL. False for a classifier set before secrets were required
    /// (posted to unsigned), and when there is no classifier.
    pub classifier_signed: bool,
    /// Whether a classifier that does not answer lets requests through.
    pub classifier_fail_open: bool,
    /// Whether the audit record of a refused request holds its prompt.
    pub store_prompts: bool,
    /// When it was last set; `None` for the screen of a tenant that never
    /// set one (which screens nothing).
    pub updated_at: Option<DateTime<Utc>>,
}

impl InputScreen {
    /// The screen of a tenant that set none: nothing is refused.
    pub fn none(tenant: TenantId) -> Self {
        InputScreen {
            tenant,
            max_prompt_bytes: None,
            deny_patterns: Vec::new(),
            classifier_url: None,
            classifier_signed: false,
            classifier_fail_open: false,
            store_prompts: false,
            updated_at: None,
        }
    }

    /// Whether it refuses anything at all.
    pub fn screens(&self) -> bool {
        self.max_prompt_bytes.is_some()
            || !self.deny_patterns.is_empty()
            || self.classifier_url.is_some()
    }
}

/// An input screen to set; every field replaces what was there. A
/// classifier URL needs a secret to sign its posts with, and a secret
/// needs a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewInputScreen {
    pub max_prompt_bytes: Option<u64>,
    pub deny_patterns: Vec<String>,
    pub classifier_url: Option<String>,
    /// Signs each post to the classifier; sealed before it is stored.
    pub classifier_secret: Option<Secret>,
    pub classifier_fail_open: bool,
    pub store_prompts: bool,
}

#[derive(sqlx::FromRow)]
struct ScreenRow {
    tenant_id: TenantId,
    max_prompt_bytes: Option<i64>,
    deny_patterns: String,
    classifier_url: Option<String>,
    classifier_secret: Option<Vec<u8>>,
    classifier_fail_open: bool,
    store_prompts: bool,
    updated_at: DateTime<Utc>,
}

const SELECT_SCREEN: &str = "SELECT tenant_id, max_prompt_bytes, deny_patterns, classifier_url, \
     classifier_secret, classifier_fail_open, store_prompts, updated_at FROM input_screens \
     WHERE tenant_id = $1";

/// What a classifier's secret is sealed for: one tenant's screen.
fn secret_context(tenant: TenantId) -> String {
    format!("input-screen-classifier:{tenant}")
}

impl ScreenRow {
    /// The screen, and the sealed secret (kept out of it).
    fn into_screen(self) -> Result<(InputScreen, Option<Vec<u8>>), StoreError> {
        let deny_patterns: Vec<String> = serde_json::from_str(&self.deny_patterns)
            .map_err(|_| StoreError::Corrupt("input screen deny patterns"))?;
        let max_prompt_bytes = self
            .max_prompt_bytes
            .map(u64::try_from)
            .transpose()
            .map_err(|_| StoreError::Corrupt("input screen prompt size"))?;
        let screen = InputScreen {
            tenant: self.tenant_id,
            max_prompt_bytes,
            deny_patterns,
            classifier_signed: self.classifier_url.is_some() && self.classifier_secret.is_some(),
            classifier_url: self.classifier_url,
            classifier_fail_open: self.classifier_fail_open,
            store_prompts: self.store_prompts,
            updated_at: Some(self.updated_at),
        };
        Ok((screen, self.classifier_secret))
    }
}

/// The patterns compiled as one set, case-insensitive, within the size
/// limits; the error says which pattern is wrong and how to fix it.
pub fn deny_set(patterns: &[String]) -> Result<RegexSet, StoreError> {
    let invalid = |reason: String| StoreError::invalid("denyPatterns", reason);
    if patterns.len() > MAX_DENY_PATTERNS {
        return Err(invalid(format!(
            "{} patterns given; at most {MAX_DENY_PATTERNS}: join related ones with `|`",
            patterns.len()
        )));
    }
    for (i, pattern) in patterns.iter().enumerate() {
        let n = i + 1;
        if pattern.trim().is_empty() {
            return Err(invalid(format!(
                "pattern {n} is empty, which would refuse every prompt; remove it"
            )));
        }
        let chars = pattern.chars().count();
        if chars > MAX_PATTERN_CHARS {
            return Err(invalid(format!(
                "pattern {n} has {chars} characters; at most {MAX_PATTERN_CHARS}: split it in two"
            )));
        }
        let one = build(std::slice::from_ref(pattern)).map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => invalid(format!(
                "pattern {n} is too large to run on every request ({}); make it smaller: \
                 counted repetitions like `x{{1000}}` and Unicode classes like `\\w` cost \
                 most (`(?-u:\\w)` is ASCII only and far smaller)",
                first_line(&e)
            )),
            e => invalid(format!(
                "pattern {n} is not a regular expression the gateway can run ({}); write it \
                 in the syntax of Rust's regex crate (RE2's: no look-around or \
                 back-references), like `ignore (all )?previous instructions`",
                first_line(&e)
            )),
        })?;
        if one.is_match("") {
            return Err(invalid(format!(
                "pattern {n} matches an empty prompt, so it would refuse every prompt; make \
                 it match some text, like `secret` rather than `(secret)?`"
            )));
        }
    }
    build(patterns).map_err(|e| {
        invalid(format!(
            "the patterns together are too large to run on every request ({}); use fewer or \
             simpler ones (large counted repetitions like `x{{1000}}` and Unicode classes \
             cost most)",
            first_line(&e)
        ))
    })
}

fn build(patterns: &[String]) -> Result<RegexSet, regex::Error> {
    RegexSetBuilder::new(patterns)
        .case_insensitive(true)
        .size_limit(PATTERNS_SIZE_LIMIT)
        .dfa_size_limit(PATTERNS_DFA_LIMIT)
        .nest_limit(PATTERNS_NEST_LIMIT)
        .build()
}

/// A regex error's first line (the rest draws the pattern with a caret).
fn first_line(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => format!("it compiles to more than {limit} bytes"),
        e => {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_else(|| text.lines().next().unwrap_or_default());
            last.trim_start_matches("error:").trim().to_owned()
        }
    }
}

/// Checks a screen before it is stored.
fn check(screen: &NewInputScreen) -> Result<(), StoreError> {
    if let Some(max) = screen.max_prompt_bytes
        && !(1..=MAX_PROMPT_BYTES_LIMIT).contains(&max)
    {
        return Err(StoreError::invalid(
            "maxPromptBytes",
            format!(
                "give a number of bytes from 1 to {MAX_PROMPT_BYTES_LIMIT}, or leave it out for \
                 no limit"
            ),
        ));
    }
    deny_set(&screen.deny_patterns)?;
    if let Some(url) = &screen.classifier_url {
        check_webhook_url(url).map_err(|e| match e {
            StoreError::Invalid { reason, .. } => StoreError::invalid(
                "classifierUrl",
                reason.replace(
                    "hooks.example.com/modelfleet",
                    "screen.example.com/classify",
                ),
            ),
            e => e,
        })?;
    }
    match (&screen.classifier_url, &screen.classifier_secret) {
        (Some(_), None) => {
            return Err(StoreError::invalid(
                "classifierSecret",
                format!(
                    "a classifier needs a secret to sign its posts with, so it can tell the \
                     hub's posts from anyone's: give classifierSecret, {MIN_CLASSIFIER_SECRET_CHARS} \
                     to {MAX_CLASSIFIER_SECRET_CHARS} characters (random, like the output of \
                     `openssl rand -hex 32`), and give the classifier the same secret"
                ),
            ));
        }
        (None, Some(_)) => {
            return Err(StoreError::invalid(
                "classifierSecret",
                "a secret without a classifier signs nothing; give classifierUrl too, or leave \
                 classifierSecret out",
            ));
        }
        (Some(_), Some(secret)) => {
            // Never the secret itself in the reason: errors reach
            // responses.
            let chars = secret.expose().chars().count();
            if !(MIN_CLASSIFIER_SECRET_CHARS..=MAX_CLASSIFIER_SECRET_CHARS).contains(&chars) {
                return Err(StoreError::invalid(
                    "classifierSecret",
                    format!(
                        "the secret has {chars} characters; use {MIN_CLASSIFIER_SECRET_CHARS} to \
                         {MAX_CLASSIFIER_SECRET_CHARS} (random, like the output of `openssl rand \
                         -hex 32`)"
                    ),
                ));
            }
        }
        (None, None) => {}
    }
    if screen.classifier_fail_open && screen.classifier_url.is_none() {
        return Err(StoreError::invalid(
            "classifierFailOpen",
            "there is no classifier to fail open; give classifierUrl too, or leave this out",
        ));
    }
    Ok(())
}

impl Store {
    /// A tenant's input screen; a tenant that set none has one that
    /// screens nothing.
    pub async fn input_screen(
        &self,
        scope: Scope,
        tenant: TenantId,
    ) -> Result<InputScreen, StoreError> {
        visible(scope, tenant, "tenant")?;
        Ok(self.input_screen_row(tenant).await?.0)
    }

    /// A tenant's input screen with its classifier's signing secret
    /// opened, for the gateway: `None` when no secret is stored (no
    /// classifier, or one set before secrets were required), `Some(Err)`
    /// when one is stored but does not open (a key this hub lacks).
    #[allow(clippy::type_complexity)]
    pub async fn input_screen_opened(
        &self,
        keyring: &Keyring,
        tenant: TenantId,
    ) -> Result<(InputScreen, Option<Result<Secret, StoreError>>), StoreError> {
        let (screen, sealed) = self.input_screen_row(tenant).await?;
        let secret = sealed.map(|sealed| {
            Ok(keyring.open(&Sealed::from_stored(sealed)?, &secret_context(tenant))?)
        });
        Ok((screen, secret))
    }

    async fn input_screen_row(
        &self,
        tenant: TenantId,
    ) -> Result<(InputScreen, Option<Vec<u8>>), StoreError> {
        let mut reader = self.reader().await?;
        let row: Option<ScreenRow> = on_conn!(reader.conn(), c => sqlx::query_as(SELECT_SCREEN)
            .bind(tenant).fetch_optional(c).await)?;
        match row {
            Some(row) => row.into_screen(),
            None => Ok((InputScreen::none(tenant), None)),
        }
    }
}

impl Tx {
    /// Replaces a tenant's input screen. Tenant admins of the tenant, and
    /// platform admins. A screen that refuses nothing is stored too: its
    /// record says when the screen was turned off.
    pub async fn set_input_screen(
        &mut self,
        keyring: &Keyring,
        tenant: TenantId,
        screen: &NewInputScreen,
    ) -> Result<InputScreen, StoreError> {
        self.actor()
            .check(tenant, Permission::ManageTenant)
            .map_err(|d| StoreError::denied(d, "input screen"))?;
        check(screen)?;
        let sealed = screen
            .classifier_secret
            .as_ref()
            .map(|secret| keyring.seal(secret, &secret_context(tenant)))
            .transpose()?;
        let name = self.tenant_name(tenant).await?;
        let at = now();
        let patterns = serde_json::to_string(&screen.deny_patterns)
            .map_err(|_| StoreError::invalid("denyPatterns", "cannot be written as JSON"))?;
        let max = screen
            .max_prompt_bytes
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        on_conn!(self.conn(), c => sqlx::query(
            "INSERT INTO input_screens (tenant_id, max_prompt_bytes, deny_patterns, \
             classifier_url, classifier_secret, classifier_fail_open, store_prompts, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id) DO UPDATE SET max_prompt_bytes = excluded.max_prompt_bytes, \
             deny_patterns = excluded.deny_patterns, classifier_url = excluded.classifier_url, \
             classifier_secret = excluded.classifier_secret, \
             classifier_fail_open = excluded.classifier_fail_open, \
             store_prompts = excluded.store_prompts, updated_at = excluded.updated_at")
            .bind(tenant).bind(max).bind(&patterns).bind(&screen.classifier_url)
            .bind(sealed.as_ref().map(Sealed::as_bytes))
            .bind(screen.classifier_fail_open).bind(screen.store_prompts).bind(at)
            .execute(c).await.map(|_| ()))?;
        self.note("update", "input-screens", Some(tenant), tenant.0, &name);
        Ok(InputScreen {
            tenant,
            max_prompt_bytes: screen.max_prompt_bytes,
            deny_patterns: screen.deny_patterns.clone(),
            classifier_url: screen.classifier_url.clone(),
            classifier_signed: screen.classifier_url.is_some() && sealed.is_some(),
            classifier_fail_open: screen.classifier_fail_open,
            store_prompts: screen.store_prompts,
            updated_at: Some(at),
        })
    }
}

#[cfg(test)]
mod tests {
    use modelfleet_core::quota::Quota;

    use super::*;
    use crate::identity::Role;
    use crate::secret::SecretKey;
    use crate::store::testing::TestDb;
    use crate::store::tests::{member, platform, tenant};

    fn screen() -> NewInputScreen {
        NewInputScreen {
            max_prompt_bytes: Some(4096),
            deny_patterns: vec!["ignore (all )?previous instructions".into()],
            classifier_url: Some("https://screen.example.com/classify".into()),
            classifier_secret: Some(Secret::new(SECRET)),
            classifier_fail_open: true,
            store_prompts: true,
        }
    }

    const SECRET: &str = "whsec-acme-classifier-0123456789";

    fn new_keyring() -> Keyring {
        Keyring::new(SecretKey::generate().unwrap())
    }

    /// Set by the tenant's admin and read back by its members; another
    /// tenant neither sees nor sets it; each change is one audit record.
    async fn a_tenant_admin_sets_the_screen_its_members_read(db: TestDb) {
        let store = &db.store;
        let keyring = new_keyring();
        let acme = tenant(store, "acme", Quota::unlimited()).await;
        let globex = tenant(store, "globex", Quota::unlimited()).await;
        let none = store
            .input_screen(Scope::Tenant(acme.id), acme.id)
            .await
            .unwrap();
        assert_eq!(none, InputScreen::none(acme.id));
        assert!(!none.screens());

        let mut tx = store
            .begin(&member(acme.id, Role::TenantAdmin))
            .await
            .unwrap();
        let set = tx
            .set_input_screen(&keyring, acme.id, &screen())
            .await
            .unwrap();
        assert_eq!(tx.changes()[0].resource, "input-screens");
        tx.commit().await.unwrap();
        let read = store
            .input_screen(Scope::Tenant(acme.id), acme.id)
            .await
            .unwrap();
        assert_eq!(read, set);
        assert!(read.screens());
        assert_eq!(read.deny_patterns, screen().deny_patterns);
        assert_eq!(read.max_prompt_bytes, Some(4096));
        assert!(read.classifier_signed);

        // The secret is stored sealed, opens with the hub's keyring for
        // the gateway, and with no other.
        let (opened, secret) = store.input_screen_opened(&keyring, acme.id).await.unwrap();
        assert_eq!(opened, read);
        assert_eq!(secret.unwrap().unwrap().expose(), SECRET);
        let (_, other) = store
            .input_screen_opened(&new_keyring(), acme.id)
            .await
            .unwrap();
        assert!(matches!(other, Some(Err(StoreError::Secret(_)))));
        let mut reader = store.reader().await.unwrap();
        let stored: Option<Vec<u8>> = on_conn!(reader.conn(), c => sqlx::query_scalar(
            "SELECT classifier_secret FROM input_screens WHERE tenant_id = $1")
            .bind(acme.id).fetch_one(c).await)
        .unwrap();
        drop(reader);
        let stored = stored.unwrap();
        assert!(!stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));

        // globex neither reads nor writes acme's screen.
        assert!(matches!(
            store.input_screen(Scope::Tenant(globex.id), acme.id).await,
            Err(StoreError::NotFound(_))
        ));
        let mut tx = store
            .begin(&member(globex.id, Role::TenantAdmin))
            .await
            .unwrap();
        assert!(
            tx.set_input_screen(&keyring, acme.id, &NewInputScreen::default())
                .await
                .is_err()
        );
        drop(tx);
        // A developer of acme may not change it.
        let mut tx = store
            .begin(&member(acme.id, Role::Developer))
            .await
            .unwrap();
        assert!(
            tx.set_input_screen(&keyring, acme.id, &NewInputScreen::default())
                .await
                .is_err()
        );
        drop(tx);
        assert_eq!(
            store.input_screen(Scope::All, acme.id).await.unwrap(),
            set,
            "unchanged"
        );

        // Turning it off is stored (and audited) too.
        let mut tx = store.begin(&platform()).await.unwrap();
        tx.set_input_screen(&keyring, acme.id, &NewInputScreen::default())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let off = store.input_screen(Scope::All, acme.id).await.unwrap();
        assert!(!off.screens());
        assert!(off.updated_at.is_some());
        let records = store.audit_records_after(0, 1000).await.unwrap();
        let screens: Vec<_> = records
            .iter()
            .filter(|r| r.event.object_ref.resource == "input-screens")
            .collect();
        assert_eq!(screens.len(), 2, "{screens:#?}");
        assert!(!serde_json::to_string(&records).unwrap().contains(SECRET));
        // Off: no classifier, nothing to open.
        let (_, secret) = store.input_screen_opened(&keyring, acme.id).await.unwrap();
        assert!(secret.is_none());
        assert!(!off.classifier_signed);
    }

    /// Each bad screen is refused with the field and a fix, and changes
    /// nothing.
    async fn bad_screens_are_refused_and_change_nothing(db: TestDb) {
        let store = &db.store;
        let keyring = new_keyring();
        let acme = tenant(store, "acme", Quota::unlimited()).await;
        let mut tx = store.begin(&platform()).await.unwrap();
        tx.set_input_screen(&keyring, acme.id, &screen())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let before = store.input_screen(Scope::All, acme.id).await.unwrap();

        let patterns = |p: Vec<&str>| NewInputScreen {
            deny_patterns: p.into_iter().map(str::to_owned).collect(),
            ..NewInputScreen::default()
        };
        let cases: Vec<(NewInputScreen, &str, &str)> = vec![
            (
                NewInputScreen {
                    max_prompt_bytes: Some(0),
                    ..NewInputScreen::default()
                },
                "maxPromptBytes",
                "from 1 to",
            ),
            (patterns(vec!["("]), "denyPatterns", "pattern 1 is not"),
            (patterns(vec!["ok", "(?<=x)y"]), "denyPatterns", "pattern 2"),
            (patterns(vec!["a*"]), "denyPatterns", "empty prompt"),
            (patterns(vec![" "]), "denyPatterns", "empty"),
            (
                patterns(vec![&"a".repeat(MAX_PATTERN_CHARS + 1)]),
                "denyPatterns",
                "at most 256",
            ),
            (patterns(vec!["x{1000}{1000}"]), "denyPatterns", "pattern 1"),
            (
                patterns(vec!["\\w{100}"]),
                "denyPatterns",
                "pattern 1 is too large",
            ),
            (
                NewInputScreen {
                    deny_patterns: (0..=MAX_DENY_PATTERNS).map(|i| format!("w{i}")).collect(),
                    ..NewInputScreen::default()
                },
                "denyPatterns",
                "at most 64",
            ),
            (
                NewInputScreen {
                    classifier_url: Some("ftp://screen.example.com/".into()),
                    ..NewInputScreen::default()
                },
                "classifierUrl",
                "http",
            ),
            (
                NewInputScreen {
                    classifier_url: Some("https://user:pw@screen.example.com/".into()),
                    ..NewInputScreen::default()
                },
                "classifierUrl",
                "credentials",
            ),
            (
                NewInputScreen {
                    classifier_fail_open: true,
                    ..NewInputScreen::default()
                },
                "classifierFailOpen",
                "classifierUrl",
            ),
            (
                NewInputScreen {
                    classifier_secret: None,
                    ..screen()
                },
                "classifierSecret",
                "give classifierSecret",
            ),
            (
                NewInputScreen {
                    classifier_secret: Some(Secret::new(SECRET)),
                    ..NewInputScreen::default()
                },
                "classifierSecret",
                "give classifierUrl too",
            ),
            (
                NewInputScreen {
                    classifier_secret: Some(Secret::new("short-secret")),
                    ..screen()
                },
                "classifierSecret",
                "16 to 256",
            ),
            (
                NewInputScreen {
                    classifier_secret: Some(Secret::new("s".repeat(257))),
                    ..screen()
                },
                "classifierSecret",
                "has 257 characters",
            ),
        ];
        for (bad, field, says) in cases {
            let mut tx = store.begin(&platform()).await.unwrap();
            match tx.set_input_screen(&keyring, acme.id, &bad).await {
                Err(StoreError::Invalid { field: f, reason }) => {
                    assert_eq!(f, field, "{bad:?}: {reason}");
                    assert!(reason.contains(says), "{bad:?}: {reason}");
                    assert!(!reason.contains(SECRET), "{reason}");
                }
                other => panic!("{bad:?} was not refused: {other:?}"),
            }
            drop(tx);
        }
        assert_eq!(
            store.input_screen(Scope::All, acme.id).await.unwrap(),
            before
        );
    }

    crate::store_tests!(
        a_tenant_admin_sets_the_screen_its_members_read,
        bad_screens_are_refused_and_change_nothing,
    );
}
