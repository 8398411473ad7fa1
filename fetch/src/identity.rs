//! Pod identities: temporary keys for the object stores from the identity
//! the cluster gives the pod, when no keys are set (no source Secret).
//!
//! | source | identity | environment (set by the cloud's webhook) | exchanged at |
//! | --- | --- | --- | --- |
//! | `s3://` | EKS IRSA | `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME` | STS `AssumeRoleWithWebIdentity` (`AWS_ENDPOINT_URL_STS`, else `sts.<region>.amazonaws.com[.cn]`) |
//! | `s3://` | EKS Pod Identity | `AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (or `_TOKEN`) | the node's agent, at that URI |
//! | `oss://` | ACK RRSA | `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`, `ALIBABA_CLOUD_OIDC_TOKEN_FILE`, `ALIBABA_CLOUD_ROLE_SESSION_NAME` | STS `AssumeRoleWithOIDC` (`ALIBABA_CLOUD_STS_ENDPOINT`, else `sts.<region>.aliyuncs.com`) |
//!
//! The token files are read again at every exchange (the kubelet rotates
//! them), and the SDK asks again before the keys expire, so a download
//! longer than the keys' hour goes on. A refused exchange is one line
//! naming the role and what the cloud said.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use modelfleet_core::crd::SourceScheme;

use crate::store::CredentialSource;
use crate::{Env, FetchError};

/// What the pod's environment says of its identity.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IdentityEnv {
    pub aws_role_arn: Option<String>,
    pub aws_web_identity_token_file: Option<String>,
    pub aws_role_session_name: Option<String>,
    pub aws_sts_endpoint: Option<String>,
    pub aws_container_credentials_full_uri: Option<String>,
    pub aws_container_authorization_token_file: Option<String>,
    pub aws_container_authorization_token: Option<String>,
    pub alibaba_role_arn: Option<String>,
    pub alibaba_oidc_provider_arn: Option<String>,
    pub alibaba_oidc_token_file: Option<String>,
    pub alibaba_role_session_name: Option<String>,
    pub alibaba_sts_endpoint: Option<String>,
}

impl std::fmt::Debug for IdentityEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityEnv")
            .field("aws_role_arn", &self.aws_role_arn)
            .field(
                "aws_web_identity_token_file",
                &self.aws_web_identity_token_file,
            )
            .field(
                "aws_container_credentials_full_uri",
                &self.aws_container_credentials_full_uri,
            )
            .field(
                "aws_container_authorization_token",
                &self.aws_container_authorization_token.as_ref().map(|_| "…"),
            )
            .field("alibaba_role_arn", &self.alibaba_role_arn)
            .field("alibaba_oidc_token_file", &self.alibaba_oidc_token_file)
            .finish_non_exhaustive()
    }
}

impl IdentityEnv {
    /// The variables named in the module's table, from `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> IdentityEnv {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        IdentityEnv {
            aws_role_arn: var("AWS_ROLE_ARN"),
            aws_web_identity_token_file: var("AWS_WEB_IDENTITY_TOKEN_FILE"),
            aws_role_session_name: var("AWS_ROLE_SESSION_NAME"),
            aws_sts_endpoint: var("AWS_ENDPOINT_URL_STS"),
            aws_container_credentials_full_uri: var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            aws_container_authorization_token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            aws_container_authorization_token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
            alibaba_role_arn: var("ALIBABA_CLOUD_ROLE_ARN"),
            alibaba_oidc_provider_arn: var("ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
            alibaba_oidc_token_file: var("ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
            alibaba_role_session_name: var("ALIBABA_CLOUD_ROLE_SESSION_NAME"),
            alibaba_sts_endpoint: var("ALIBABA_CLOUD_STS_ENDPOINT"),
        }
    }
}

/// One way to get temporary keys.
#[derive(Debug, Clone)]
enum Exchange {
    WebIdentity {
        role_arn: String,
        token_file: String,
        session: String,
        sts: String,
    },
    Container {
        uri: String,
        token_file: Option<String>,
        token: Option<String>,
    },
    Oidc {
        role_arn: String,
        provider_arn: String,
        token_file: String,
        session: String,
        sts: String,
    },
}

/// A pod identity's keys, asked for again whenever the SDK needs them.
#[derive(Debug, Clone)]
pub(crate) struct PodIdentity {
    exchange: Exchange,
    http: reqwest::Client,
    /// The last keys, used until five minutes before they expire.
    kept: std::sync::Arc<tokio::sync::Mutex<Option<Credentials>>>,
}

const SESSION: &str = "modelfleet-fetch";

fn https_base(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    }
}

/// Whether an `http://` container-credentials URI is one the SDKs allow:
/// loopback, or the ECS and EKS agents' link-local addresses.
fn allowed_container_uri(uri: &str) -> bool {
    if uri.starts_with("https://") {
        return true;
    }
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        host,
        "localhost" | "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23"
    ) || host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl PodIdentity {
    /// The identity the environment gives for `scheme` in `region`, if
    /// any, and how errors name it.
    pub(crate) fn of(
        scheme: SourceScheme,
        env: &Env,
        region: &str,
    ) -> Result<Option<(PodIdentity, CredentialSource)>, FetchError> {
        let id = &env.identity;
        let exchange = match scheme {
            SourceScheme::S3 => {
                if let (Some(role_arn), Some(token_file)) =
                    (&id.aws_role_arn, &id.aws_web_identity_token_file)
                {
                    let sts = match &id.aws_sts_endpoint {
                        Some(url) => https_base(url),
                        None if region.starts_with("cn-") => {
                            format!("https://sts.{region}.amazonaws.com.cn")
                        }
                        None => format!("https://sts.{region}.amazonaws.com"),
                    };
                    Exchange::WebIdentity {
                        role_arn: role_arn.clone(),
                        token_file: token_file.clone(),
                        session: id
                            .aws_role_session_name
                            .clone()
                            .unwrap_or_else(|| SESSION.to_owned()),
                        sts,
                    }
                } else if let Some(uri) = &id.aws_container_credentials_full_uri {
                    if !allowed_container_uri(uri) {
                        return Err(FetchError::Credentials(format!(
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI {uri} is neither https:// nor \
                             the node's agent on a loopback or link-local address; refusing to \
                             send the pod's token there"
                        )));
                    }
                    Exchange::Container {
                        uri: uri.clone(),
                        token_file: id.aws_container_authorization_token_file.clone(),
                        token: id.aws_container_authorization_token.clone(),
                    }
                } else {
                    return Ok(None);
                }
            }
            SourceScheme::Oss => {
                let (Some(role_arn), Some(provider_arn), Some(token_file)) = (
                    &id.alibaba_role_arn,
                    &id.alibaba_oidc_provider_arn,
                    &id.alibaba_oidc_token_file,
                ) else {
                    if id.alibaba_role_arn.is_some() || id.alibaba_oidc_token_file.is_some() {
                        return Err(FetchError::Credentials(
                            "ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and \
                             ALIBABA_CLOUD_OIDC_TOKEN_FILE go together (ACK sets all three when \
                             RRSA is enabled for the pod's service account)"
                                .into(),
                        ));
                    }
                    return Ok(None);
                };
                Exchange::Oidc {
                    role_arn: role_arn.clone(),
                    provider_arn: provider_arn.clone(),
                    token_file: token_file.clone(),
                    session: id
                        .alibaba_role_session_name
                        .clone()
                        .unwrap_or_else(|| SESSION.to_owned()),
                    sts: https_base(
                        id.alibaba_sts_endpoint
                            .as_deref()
                            .unwrap_or(&format!("sts.{region}.aliyuncs.com")),
                    ),
                }
            }
            _ => return Ok(None),
        };
        let source = match &exchange {
            Exchange::WebIdentity { role_arn, .. } => {
                CredentialSource(format!("AWS_ROLE_ARN {role_arn} (EKS IRSA)"))
            }
            Exchange::Container { uri, .. } => CredentialSource(format!(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI {uri} (EKS Pod Identity)"
            )),
            Exchange::Oidc { role_arn, .. } => {
                CredentialSource(format!("ALIBABA_CLOUD_ROLE_ARN {role_arn} (ACK RRSA)"))
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| FetchError::Credentials(format!("cannot make an HTTP client: {e}")))?;
        let identity = PodIdentity {
            exchange,
            http,
            kept: Default::default(),
        };
        Ok(Some((identity, source)))
    }

    /// Keys: the last ones while they last, else exchanged anew (one
    /// exchange at a time).
    pub(crate) async fn credentials(&self) -> Result<Credentials, String> {
        let mut kept = self.kept.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_some_and(|e| e > SystemTime::now() + Duration::from_secs(300))
        };
        if let Some(c) = kept.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self.exchange().await?;
        *kept = Some(c.clone());
        Ok(c)
    }

    /// POSTs `form` to STS at `sts`: the status and the body.
    async fn post_form(
        &self,
        sts: &str,
        form: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, String), String> {
        let response = self
            .http
            .post(format!("{sts}/"))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(form))
            .send()
            .await
            .map_err(|e| format!("cannot reach STS at {sts}: {e}"))?;
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// Exchanges the pod's token for keys now.
    async fn exchange(&self) -> Result<Credentials, String> {
        match &self.exchange {
            Exchange::WebIdentity {
                role_arn,
                token_file,
                session,
                sts,
            } => {
                let token = read_token(token_file, "AWS_WEB_IDENTITY_TOKEN_FILE").await?;
                let form = [
                    ("Action", "AssumeRoleWithWebIdentity"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", role_arn),
                    ("RoleSessionName", session),
                    ("WebIdentityToken", &token),
                ];
                let (status, body) = self.post_form(sts, &form).await?;
                if !status.is_success() {
                    let code = xml_text(&body, "Code").unwrap_or_default();
                    let message = xml_text(&body, "Message").unwrap_or_default();
                    return Err(format!(
                        "STS refused AssumeRoleWithWebIdentity for {role_arn} (HTTP {status} \
                         {code}: {message}); check the role's trust policy names this cluster's \
                         OIDC provider and the pod's service account"
                    ));
                }
                let field = |name: &str| {
                    xml_text(&body, name)
                        .ok_or_else(|| format!("STS answered without {name}: not an STS answer"))
                };
                keys(
                    field("AccessKeyId")?,
                    field("SecretAccessKey")?,
                    Some(field("SessionToken")?),
                    &field("Expiration")?,
                    "eks-irsa",
                )
            }
            Exchange::Container {
                uri,
                token_file,
                token,
            } => {
                let token = match (token_file, token) {
                    (Some(file), _) => {
                        Some(read_token(file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").await?)
                    }
                    (None, token) => token.clone(),
                };
                let mut request = self.http.get(uri);
                if let Some(token) = token {
                    request = request.header(reqwest::header::AUTHORIZATION, token.trim());
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| format!("cannot reach the credentials agent at {uri}: {e}"))?;
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if !status.is_success() {
                    return Err(format!(
                        "the credentials agent at {uri} refused (HTTP {status}: {}); check the \
                         pod's service account has a Pod Identity association",
                        body["Message"].as_str().unwrap_or_default()
                    ));
                }
                let field = |name: &str| {
                    body[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("the credentials agent answered without {name}"))
                };
                keys(
                    field("AccessKeyId")?,
                    field("SecretAccessKey")?,
                    Some(field("Token")?),
                    &field("Expiration")?,
                    "eks-pod-identity",
                )
            }
            Exchange::Oidc {
                role_arn,
                provider_arn,
                token_file,
                session,
                sts,
            } => {
                let token = read_token(token_file, "ALIBABA_CLOUD_OIDC_TOKEN_FILE").await?;
                let now = aws_sdk_s3::primitives::DateTime::from(SystemTime::now())
                    .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
                    .map_err(|e| e.to_string())?;
                let form = [
                    ("Action", "AssumeRoleWithOIDC"),
                    ("Version", "2015-04-01"),
                    ("Format", "JSON"),
                    ("Timestamp", &now),
                    ("RoleArn", role_arn),
                    ("OIDCProviderArn", provider_arn),
                    ("OIDCToken", &token),
                    ("RoleSessionName", session),
                ];
                let (status, body) = self.post_form(sts, &form).await?;
                let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if !status.is_success() {
                    return Err(format!(
                        "STS refused AssumeRoleWithOIDC for {role_arn} (HTTP {status} {}: {}); \
                         check the role trusts this cluster's OIDC provider and the pod's \
                         service account",
                        body["Code"].as_str().unwrap_or_default(),
                        body["Message"].as_str().unwrap_or_default()
                    ));
                }
                let c = &body["Credentials"];
                let field = |name: &str| {
                    c[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("STS answered without Credentials.{name}"))
                };
                keys(
                    field("AccessKeyId")?,
                    field("AccessKeySecret")?,
                    Some(field("SecurityToken")?),
                    &field("Expiration")?,
                    "ack-rrsa",
                )
            }
        }
    }
}

impl ProvideCredentials for PodIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

async fn read_token(path: &str, variable: &str) -> Result<String, String> {
    let token = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read the pod's token at {path} ({variable}): {e}"))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(format!("the pod's token at {path} ({variable}) is empty"));
    }
    Ok(token)
}

fn keys(
    id: String,
    secret: String,
    token: Option<String>,
    expiration: &str,
    provider: &'static str,
) -> Result<Credentials, String> {
    let expires = aws_sdk_s3::primitives::DateTime::from_str(
        expiration,
        aws_sdk_s3::primitives::DateTimeFormat::DateTime,
    )
    .ok()
    .and_then(|t| SystemTime::try_from(t).ok())
    .ok_or_else(|| format!("the keys' expiry {expiration:?} is not a date and time"))?;
    Ok(Credentials::new(id, secret, token, Some(expires), provider))
}

/// `application/x-www-form-urlencoded`: each byte but the unreserved ones
/// percent-encoded.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The text of the first `<name>` element of an XML answer, unescaped.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pods_token_goes_only_to_the_node_agent_or_https() {
        for ok in [
            "http://169.254.170.23/v1/credentials",
            "http://169.254.170.2/v2/credentials/x",
            "http://127.0.0.1:8080/creds",
            "http://[fd00:ec2::23]/v1/credentials",
            "https://creds.example.com/",
        ] {
            assert!(allowed_container_uri(ok), "{ok}");
        }
        for bad in [
            "http://10.0.0.5/creds",
            "http://attacker.example.com/",
            "http://169.254.169.254/latest",
            "ftp://127.0.0.1/",
        ] {
            assert!(!allowed_container_uri(bad), "{bad}");
        }
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            form_body(&[("RoleArn", "arn:aws:iam::1:role/r"), ("T", "a b+c")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&T=a%20b%2Bc"
        );
    }

    #[test]
    fn sts_answers_read_as_keys() {
        let xml = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
            <Credentials><SessionToken>tok&amp;en</SessionToken>\
            <SecretAccessKey>sec</SecretAccessKey><Expiration>2026-12-07T10:00:00Z</Expiration>\
            <AccessKeyId>ASIA1</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>\
            </AssumeRoleWithWebIdentityResponse>";
        assert_eq!(xml_text(xml, "SessionToken").as_deref(), Some("tok&en"));
        assert_eq!(xml_text(xml, "Missing"), None);
        let c = keys(
            "ASIA1".into(),
            "sec".into(),
            Some("t".into()),
            "2026-12-07T10:00:00Z",
            "eks-irsa",
        )
        .unwrap();
        assert_eq!(c.access_key_id(), "ASIA1");
        assert!(c.expiry().is_some());
        assert!(keys("a".into(), "b".into(), None, "tomorrow", "x").is_err());
    }
}
