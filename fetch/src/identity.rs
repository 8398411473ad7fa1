//! Pod identities: temporary keys for the object stores from the identity
//! the cluster gives the pod, when no keys are set (no source Secret).
//!
//! | source | identity | environment (set by the cloud's webhook) | exchanged at |
//! | --- | --- | --- | --- |
//! | `s3://` | EKS IRSA | `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME` | STS `AssumeRoleWithWebIdentity` (`AWS_ENDPOINT_URL_STS`, else `sts.<region>.amazonaws.com[.cn]`) |
//! | `s3://` | EKS Pod Identity | `AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (or `_TOKEN`) | the node's agent, at that URI |
//! | `oss://` | ACK RRSA | `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`, `ALIBABA_CLOUD_OIDC_TOKEN_FILE`, `ALIBABA_CLOUD_ROLE_SESSION_NAME` | STS `AssumeRoleWithOIDC` (`ALIBABA_CLOUD_STS_ENDPOINT`, else `sts.<region>.aliyuncs.com`) |
//! | `cos://` | TKE pod identity | `TKE_ROLE_ARN`, `TKE_PROVIDER_ID`, `TKE_WEB_IDENTITY_TOKEN_FILE` (or `TKE_IDENTITY_TOKEN_FILE`), `TKE_REGION` | STS `AssumeRoleWithWebIdentity`, API 3.0 version 2018-08-13, unsigned (`TENCENTCLOUD_STS_ENDPOINT`, else `sts.tencentcloudapi.com`) |
//! | `obs://` | CCE workload identity | `HUAWEICLOUD_SDK_IDP_ID`, `HUAWEICLOUD_SDK_ID_TOKEN_FILE`, `HUAWEICLOUD_SDK_PROJECT_ID`, `HUAWEICLOUD_SDK_REGION` | IAM: a federated token for the ID token (`POST /v3.0/OS-AUTH/id-token/tokens`, `X-Idp-Id`), then temporary keys for it (`POST /v3.0/OS-CREDENTIAL/securitytokens`) (`HUAWEICLOUD_SDK_IAM_ENDPOINT`, else `iam.<region>.myhuaweicloud.com`) |
//!
//! The TKE and ACK webhooks, and EKS's, set these variables on the pods of
//! a service account bound to a role. CCE has no webhook: the operator
//! projects the token and sets the variables on the fetch container when
//! the pool names its identity provider (`operator/src/build/pod.rs`).
//!
//! The token files are read again at every exchange (the kubelet rotates
//! them), and the SDK asks again before the keys expire, so a download
//! longer than the keys' hour goes on. A refused exchange is one line
//! naming the role and what the cloud said.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use modelfleet_core::crd::SourceScheme;

use crate::endpoint::Environment;
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
    pub tencent_role_arn: Option<String>,
    pub tencent_provider_id: Option<String>,
    pub tencent_token_file: Option<String>,
    pub tencent_region: Option<String>,
    pub tencent_sts_endpoint: Option<String>,
    pub huawei_idp_id: Option<String>,
    pub huawei_token_file: Option<String>,
    pub huawei_project_id: Option<String>,
    pub huawei_region: Option<String>,
    pub huawei_iam_endpoint: Option<String>,
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
            .field("tencent_role_arn", &self.tencent_role_arn)
            .field("tencent_token_file", &self.tencent_token_file)
            .field("huawei_idp_id", &self.huawei_idp_id)
            .field("huawei_token_file", &self.huawei_token_file)
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
            tencent_role_arn: var("TKE_ROLE_ARN"),
            tencent_provider_id: var("TKE_PROVIDER_ID"),
            // The SDKs read the first; reqsign and some guides the second.
            tencent_token_file: var("TKE_WEB_IDENTITY_TOKEN_FILE")
                .or_else(|| var("TKE_IDENTITY_TOKEN_FILE")),
            tencent_region: var("TKE_REGION"),
            tencent_sts_endpoint: var("TENCENTCLOUD_STS_ENDPOINT"),
            huawei_idp_id: var("HUAWEICLOUD_SDK_IDP_ID"),
            huawei_token_file: var("HUAWEICLOUD_SDK_ID_TOKEN_FILE"),
            huawei_project_id: var("HUAWEICLOUD_SDK_PROJECT_ID"),
            huawei_region: var("HUAWEICLOUD_SDK_REGION"),
            huawei_iam_endpoint: var("HUAWEICLOUD_SDK_IAM_ENDPOINT"),
        }
    }
}

impl IdentityEnv {
    /// `environment`, with the region the pod's identity names for
    /// `scheme`'s cloud (`TKE_REGION`, `HUAWEICLOUD_SDK_REGION`) where it
    /// names none itself, as those clouds' SDKs take it.
    pub fn with_region(&self, scheme: SourceScheme, environment: &Environment) -> Environment {
        let identity_region = match scheme {
            SourceScheme::Cos => self.tencent_region.clone(),
            SourceScheme::Obs => self.huawei_region.clone(),
            _ => None,
        };
        Environment {
            region: environment.region.clone().or(identity_region),
            ..environment.clone()
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
    Tencent {
        role_arn: String,
        provider_id: String,
        token_file: String,
        region: String,
        sts: String,
    },
    Huawei {
        idp_id: String,
        project_id: String,
        token_file: String,
        iam: String,
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
            SourceScheme::Cos => {
                let (Some(role_arn), Some(provider_id), Some(token_file)) = (
                    &id.tencent_role_arn,
                    &id.tencent_provider_id,
                    &id.tencent_token_file,
                ) else {
                    if id.tencent_role_arn.is_some() || id.tencent_token_file.is_some() {
                        return Err(FetchError::Credentials(
                            "TKE_ROLE_ARN, TKE_PROVIDER_ID and TKE_WEB_IDENTITY_TOKEN_FILE go \
                             together (TKE's pod identity webhook sets all three on the pods of \
                             a service account bound to a CAM role)"
                                .into(),
                        ));
                    }
                    return Ok(None);
                };
                Exchange::Tencent {
                    role_arn: role_arn.clone(),
                    provider_id: provider_id.clone(),
                    token_file: token_file.clone(),
                    region: id
                        .tencent_region
                        .clone()
                        .unwrap_or_else(|| region.to_owned()),
                    sts: https_base(
                        id.tencent_sts_endpoint
                            .as_deref()
                            .unwrap_or("sts.tencentcloudapi.com"),
                    ),
                }
            }
            SourceScheme::Obs => {
                let (Some(idp_id), Some(token_file), Some(project_id)) = (
                    &id.huawei_idp_id,
                    &id.huawei_token_file,
                    &id.huawei_project_id,
                ) else {
                    if id.huawei_idp_id.is_some() || id.huawei_token_file.is_some() {
                        return Err(FetchError::Credentials(
                            "HUAWEICLOUD_SDK_IDP_ID, HUAWEICLOUD_SDK_ID_TOKEN_FILE and \
                             HUAWEICLOUD_SDK_PROJECT_ID go together (the operator sets all three \
                             when the pool names its CCE identity provider)"
                                .into(),
                        ));
                    }
                    return Ok(None);
                };
                let iam_region = id.huawei_region.as_deref().unwrap_or(region);
                Exchange::Huawei {
                    idp_id: idp_id.clone(),
                    project_id: project_id.clone(),
                    token_file: token_file.clone(),
                    iam: https_base(
                        id.huawei_iam_endpoint
                            .as_deref()
                            .unwrap_or(&format!("iam.{iam_region}.myhuaweicloud.com")),
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
            Exchange::Tencent { role_arn, .. } => {
                CredentialSource(format!("TKE_ROLE_ARN {role_arn} (TKE pod identity)"))
            }
            Exchange::Huawei { idp_id, .. } => CredentialSource(format!(
                "HUAWEICLOUD_SDK_IDP_ID {idp_id} (CCE workload identity)"
            )),
        };
        // No redirects: a 307 would carry the pod's token to another host.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
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
            Exchange::Tencent {
                role_arn,
                provider_id,
                token_file,
                region,
                sts,
            } => {
                let token = read_token(token_file, "TKE_WEB_IDENTITY_TOKEN_FILE").await?;
                self.tencent(role_arn, provider_id, &token, region, sts)
                    .await
            }
            Exchange::Huawei {
                idp_id,
                project_id,
                token_file,
                iam,
            } => {
                let token = read_token(token_file, "HUAWEICLOUD_SDK_ID_TOKEN_FILE").await?;
                self.huawei(idp_id, project_id, &token, iam).await
            }
        }
    }

    /// Tencent Cloud's `AssumeRoleWithWebIdentity` (API 3.0, unsigned, as
    /// the SDKs send it): a refusal comes back as HTTP 200 with
    /// `Response.Error`.
    async fn tencent(
        &self,
        role_arn: &str,
        provider_id: &str,
        token: &str,
        region: &str,
        sts: &str,
    ) -> Result<Credentials, String> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let request = serde_json::json!({
            "ProviderId": provider_id,
            "WebIdentityToken": token,
            "RoleArn": role_arn,
            "RoleSessionName": SESSION,
            "DurationSeconds": 7200,
        });
        let response = self
            .http
            .post(format!("{sts}/"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::AUTHORIZATION, "SKIP")
            .header("X-TC-Action", "AssumeRoleWithWebIdentity")
            .header("X-TC-Version", "2018-08-13")
            .header("X-TC-Region", region)
            .header("X-TC-Timestamp", now.to_string())
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach STS at {sts}: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let answer = &body["Response"];
        if !status.is_success() || answer.get("Error").is_some() {
            let error = &answer["Error"];
            return Err(format!(
                "STS refused AssumeRoleWithWebIdentity for {role_arn} (HTTP {status} {}: {}); \
                 check the role trusts identity provider {provider_id} and names this pod's \
                 service account",
                error["Code"].as_str().unwrap_or_default(),
                error["Message"].as_str().unwrap_or_default()
            ));
        }
        let c = &answer["Credentials"];
        let field = |name: &str| {
            c[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("STS answered without Credentials.{name}"))
        };
        let expires = answer["ExpiredTime"]
            .as_u64()
            .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t))
            .ok_or_else(|| "STS answered without ExpiredTime".to_owned())?;
        Ok(Credentials::new(
            field("TmpSecretId")?,
            field("TmpSecretKey")?,
            Some(field("Token")?),
            Some(expires),
            "tke-pod-identity",
        ))
    }

    /// Huawei Cloud IAM: the pod's ID token for a federated token scoped
    /// to the project, then that token for temporary keys.
    async fn huawei(
        &self,
        idp_id: &str,
        project_id: &str,
        token: &str,
        iam: &str,
    ) -> Result<Credentials, String> {
        let refused = |step: &str, status: reqwest::StatusCode, body: &serde_json::Value| {
            let (code, message) = match body.get("error") {
                Some(e) => (e["code"].to_string(), e["message"].as_str()),
                None => (body["error_code"].to_string(), body["error_msg"].as_str()),
            };
            format!(
                "IAM refused {step} for identity provider {idp_id} (HTTP {status} {}: {}); \
                 check the provider's client ID is the token's audience and its rules map this \
                 pod's service account to a group that may read the bucket",
                code.trim_matches('"'),
                message.unwrap_or_default()
            )
        };
        let request = serde_json::json!({"auth": {
            "id_token": {"id": token},
            "scope": {"project": {"id": project_id}},
        }});
        let response = self
            .http
            .post(format!("{iam}/v3.0/OS-AUTH/id-token/tokens"))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json;charset=utf8",
            )
            .header("X-Idp-Id", idp_id)
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach IAM at {iam}: {e}"))?;
        let status = response.status();
        let federated = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(refused("the ID token", status, &body));
        }
        let federated =
            federated.ok_or_else(|| "IAM answered without X-Subject-Token".to_owned())?;
        let request = serde_json::json!({"auth": {"identity": {
            "methods": ["token"],
            "token": {"duration_seconds": 7200},
        }}});
        let response = self
            .http
            .post(format!("{iam}/v3.0/OS-CREDENTIAL/securitytokens"))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json;charset=utf8",
            )
            .header("X-Auth-Token", federated)
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| format!("cannot reach IAM at {iam}: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(refused("temporary keys", status, &body));
        }
        let c = &body["credential"];
        let field = |name: &str| {
            c[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("IAM answered without credential.{name}"))
        };
        keys(
            field("access")?,
            field("secret")?,
            Some(field("securitytoken")?),
            &field("expires_at")?,
            "cce-workload-identity",
        )
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
    fn tke_and_cce_pods_name_their_region_where_nothing_else_does() {
        let identity = IdentityEnv {
            tencent_region: Some("ap-shanghai".into()),
            huawei_region: Some("cn-north-4".into()),
            ..IdentityEnv::default()
        };
        let none = Environment::default();
        let region = |scheme, env: &Environment| identity.with_region(scheme, env).region;
        assert_eq!(
            region(SourceScheme::Cos, &none).as_deref(),
            Some("ap-shanghai")
        );
        assert_eq!(
            region(SourceScheme::Obs, &none).as_deref(),
            Some("cn-north-4")
        );
        assert_eq!(region(SourceScheme::Oss, &none), None);
        let set = Environment {
            region: Some("cn-south-1".into()),
            ..Environment::default()
        };
        assert_eq!(
            region(SourceScheme::Obs, &set).as_deref(),
            Some("cn-south-1"),
            "AWS_REGION wins"
        );
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
        // IAM's expiry carries microseconds.
        let c = keys(
            "a".into(),
            "b".into(),
            None,
            "2026-12-07T12:00:00.123000Z",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.expiry(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_644_800_123_000))
        );
    }
}
