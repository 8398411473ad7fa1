//! TOTP second factors: enrolment (a secret sealed with the keyring, not
//! enforced until a code from it is confirmed) and checking a code at
//! sign-in, each code accepted once.

use super::{StoreError, Tx, now, on_conn};
use crate::identity::Principal;
use crate::identity::totp;
use crate::ids::UserId;
use crate::secret::{Keyring, Sealed, Secret};

/// What a user adds to their authenticator app. Shown once.
#[derive(Debug)]
pub struct TotpEnrolment {
    pub secret_base32: Secret,
    pub otpauth_uri: Secret,
}

fn context(user: UserId) -> String {
    format!("totp:{user}")
}

impl Tx {
    fn acting_user(&self) -> Result<(UserId, String), StoreError> {
        match &self.actor().principal {
            Principal::User { id, username } => Ok((*id, username.clone())),
            _ => Err(StoreError::invalid(
                "user",
                "a second factor belongs to a person: sign in with a password, not an API key",
            )),
        }
    }

    /// Starts enrolling the signed-in user: a new secret, stored sealed and
    /// not yet enforced. Refused while a confirmed factor is on.
    pub async fn begin_totp(&mut self, keyring: &Keyring) -> Result<TotpEnrolment, StoreError> {
        let (user, username) = self.acting_user()?;
        let (enabled,): (bool,) = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT totp_enabled FROM users WHERE id = $1").bind(user).fetch_one(c).await)?;
        if enabled {
            return Err(StoreError::Conflict {
                kind: "second factor",
                name: "TOTP is already on for this account; an administrator can reset it".into(),
            });
        }
        let raw = totp::generate().map_err(|_| StoreError::invalid("totp", "no randomness"))?;
        let base32 = Secret::new(totp::to_base32(&raw));
        let sealed = keyring.seal(&base32, &context(user))?;
        self.set_totp(user, Some(&sealed), false).await?;
        let uri = totp::otpauth_uri("modelfleet", &username, base32.expose());
        Ok(TotpEnrolment {
            secret_base32: base32,
            otpauth_uri: Secret::new(uri),
        })
    }

    /// Checks `code` against `user`'s secret, once: the step it was valid
    /// for is recorded and no code of that step or earlier works again.
    /// With `enable`, a right code also turns the factor on (enrolment).
    pub async fn check_totp(
        &mut self,
        keyring: &Keyring,
        user: UserId,
        code: &str,
        enable: bool,
    ) -> Result<bool, StoreError> {
        let row: Option<(Option<Vec<u8>>, Option<i64>, bool)> = on_conn!(self.conn(), c => sqlx::query_as(
            "SELECT totp_secret, totp_last_step, totp_enabled FROM users WHERE id = $1")
            .bind(user).fetch_optional(c).await)?;
        let Some((Some(sealed), last_step, enabled)) = row else {
            return Err(StoreError::invalid(
                "code",
                "this account has no second factor to check; start with POST /api/v1/users/me/totp",
            ));
        };
        let sealed = Sealed::from_stored(sealed)?;
        let base32 = keyring.open(&sealed, &context(user))?;
        let raw = totp::from_base32(base32.expose()).ok_or(StoreError::Corrupt("totp secret"))?;
        let Some(step) = totp::verify(&raw, code, now().timestamp(), last_step) else {
            return Ok(false);
        };
        on_conn!(self.conn(), c => sqlx::query(
            "UPDATE users SET totp_last_step = $2, totp_enabled = (totp_enabled OR $3) WHERE id = $1")
            .bind(user).bind(step).bind(enable).execute(c).await.map(|_| ()))?;
        if enable && !enabled {
            let (_, username) = self.acting_user()?;
            self.note("update", "users", self.actor().tenant, user.0, &username);
        }
        Ok(true)
    }
}
