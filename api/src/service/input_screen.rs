//! A tenant's input screen as callers use it: read by anyone of the
//! tenant (a classifier URL only masked unless they may manage it), set by
//! its tenant admins and platform admins, audited with its transaction.
//! The gateway applies it (`crate::gateway::screen`). The classifier's
//! signing secret goes in and never comes out: views say only whether the
//! classifier's posts are signed.

use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Result};
use crate::billing::webhook::{self, WebhookError};
use crate::identity::Permission;
use crate::ids::TenantId;
use crate::secret::Secret;
use crate::store::{InputScreen, NewInputScreen};

/// A tenant's input screen as callers set it; every field replaces what
/// was set before, and a field left out turns its rule off.
// Its `Debug` (below) leaves the classifier's secret out.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetInputScreen {
    /// The largest prompt, in UTF-8 bytes of its text (chat messages'
    /// contents, `prompt`, embeddings' `input`), from 1 to 67108864. Left
    /// out: no limit.
    pub max_prompt_bytes: Option<u64>,
    /// Prompts any of these match anywhere are refused. Regular
    /// expressions in the syntax of Rust's `regex` crate (RE2's: no
    /// look-around, no back-references; matching takes time linear in the
    /// prompt), matched case-insensitively. At most 64, each at most 256
    /// characters, together compiling to at most 512 KiB.
    #[serde(default)]
    pub deny_patterns: Vec<String>,
    /// Where each prompt that passed the other rules is posted as
    /// `{"input": ["…"], "tenant", "model", "endpoint"}` to be judged: an
    /// answer `{"flagged": true}` (or OpenAI's moderation shape, a result
    /// with `"flagged": true`) refuses it. http(s), public addresses only
    /// (as budget webhooks); the answer must come within 2 s. Requires
    /// `classifierSecret`.
    pub classifier_url: Option<String>,
    /// Signs each post to the classifier, as budget webhooks' deliveries:
    /// `Modelfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
    /// "<t>.<body>")>`, so the classifier can tell the hub's posts from
    /// anyone's. 16 to 256 characters; required with `classifierUrl`, and
    /// refused without it. Stored encrypted, never shown again (the screen
    /// says `classifierSigned`).
    #[schema(write_only)]
    pub classifier_secret: Option<String>,
    /// Whether a classifier that does not answer in time, answers an
    /// error or something unreadable lets the request through (true) or
    /// refuses it with 503 (false, the default).
    #[serde(default)]
    pub classifier_fail_open: bool,
    /// Whether the audit record of a refused request holds its prompt
    /// text (its first 2 KiB). Off by default: the record holds only the
    /// rule that refused it.
    #[serde(default)]
    pub store_prompts: bool,
}

impl std::fmt::Debug for SetInputScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetInputScreen")
            .field("max_prompt_bytes", &self.max_prompt_bytes)
            .field("deny_patterns", &self.deny_patterns)
            .field("classifier_url", &self.classifier_url)
            .field(
                "classifier_secret",
                &self.classifier_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("classifier_fail_open", &self.classifier_fail_open)
            .field("store_prompts", &self.store_prompts)
            .finish()
    }
}

/// A tenant's input screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InputScreenView {
    #[schema(value_type = uuid::Uuid)]
    pub tenant: TenantId,
    /// The largest prompt in UTF-8 bytes; absent: no limit.
    pub max_prompt_bytes: Option<u64>,
    pub deny_patterns: Vec<String>,
    /// The classifier's URL; only its origin (`https://host/…`) for those
    /// who may not change the screen.
    pub classifier_url: Option<String>,
    /// Whether the classifier's posts are signed with a secret the tenant
    /// set. False with a classifier set before secrets were required: its
    /// posts go unsigned until the screen is set again with
    /// `classifierSecret`.
    pub classifier_signed: bool,
    pub classifier_fail_open: bool,
    pub store_prompts: bool,
    /// Whether any rule is set.
    pub screens: bool,
    /// When it was last set; absent when it never was.
    pub updated_at: Option<DateTime<Utc>>,
}

impl InputScreenView {
    fn of(screen: InputScreen, may_manage: bool) -> Self {
        let screens = screen.screens();
        let InputScreen {
            tenant,
            max_prompt_bytes,
            deny_patterns,
            classifier_url,
            classifier_signed,
            classifier_fail_open,
            store_prompts,
            updated_at,
        } = screen;
        InputScreenView {
            tenant,
            max_prompt_bytes,
            deny_patterns,
            classifier_url: classifier_url.map(|url| {
                if may_manage {
                    url
                } else {
                    webhook::masked(&url)
                }
            }),
            classifier_signed,
            classifier_fail_open,
            store_prompts,
            screens,
            updated_at,
        }
    }
}

impl Hub {
    /// A tenant's input screen (one that screens nothing when none was
    /// set). Anyone who reads the tenant.
    pub async fn input_screen(&self, caller: &Caller, tenant: TenantId) -> Result<InputScreenView> {
        caller.require(Permission::Read)?;
        self.store.tenant(caller.scope(), tenant).await?;
        let screen = self.store.input_screen(caller.scope(), tenant).await?;
        let may_manage = caller.actor.check(tenant, Permission::ManageTenant).is_ok();
        Ok(InputScreenView::of(screen, may_manage))
    }

    /// Replaces a tenant's input screen. Tenant admins of the tenant and
    /// platform admins. A gateway in another process applies it within
    /// `gateway::screen`'s cache time (a few seconds).
    pub async fn set_input_screen(
        &self,
        caller: &Caller,
        tenant: TenantId,
        request: SetInputScreen,
    ) -> Result<InputScreenView> {
        self.store.tenant(caller.scope(), tenant).await?;
        caller.require(Permission::ManageTenant)?;
        let SetInputScreen {
            max_prompt_bytes,
            deny_patterns,
            classifier_url,
            classifier_secret,
            classifier_fail_open,
            store_prompts,
        } = request;
        // A `Secret` at once (never printed, zeroed when dropped); the
        // store checks that it goes with a URL, and its length, in errors
        // that never hold it.
        let classifier_secret = classifier_secret.map(Secret::new);
        let classifier_url = classifier_url.map(|u| u.trim().to_owned());
        if let Some(url) = &classifier_url {
            webhook::check_receiver(url, self.settings.webhook_allow_private_addresses).map_err(
                |e| match e {
                    WebhookError::InvalidUrl(reason) => Error::invalid(
                        "classifierUrl",
                        format!(
                            "the classifier URL {}; write it like \
                             https://screen.example.com/classify",
                            reason.replace("posts alerts", "posts prompts")
                        ),
                    ),
                    e => Error::internal(&e),
                },
            )?;
        }
        let new = NewInputScreen {
            max_prompt_bytes,
            deny_patterns,
            classifier_url,
            classifier_secret,
            classifier_fail_open,
            store_prompts,
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let screen = tx.set_input_screen(&self.keyring, tenant, &new).await?;
        tx.commit_with(StatusCode::OK).await?;
        Ok(InputScreenView::of(screen, true))
    }
}
