//! Where an object-store client may connect, for one who reads on someone
//! else's behalf: the hub reads a tenant's store at the endpoint the tenant
//! names (and at a host name built from the region it names), and must not
//! be made to reach its own network — its cloud's metadata service, the
//! database, the clusters' API servers.
//!
//! With a [`ConnectGuard`] on [`Env`](crate::Env), the S3 client
//!
//! - resolves host names itself and connects only to the addresses it
//!   resolved, once every one of them passed the guard's check: the check
//!   is the client's resolver, so no second lookup (DNS rebinding) can
//!   answer differently between the check and the connection;
//! - refuses an endpoint whose host is an address (in any form the URL
//!   parser reads: `2130706433`, `[::ffff:127.0.0.1]`), which no resolver
//!   is asked about, before anything is sent;
//! - uses no proxy, whatever `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`
//!   say: a proxy would resolve the name again, on its own network;
//! - follows no redirect (no S3 client does: a 3xx is the store's answer).
//!
//! Without one (the CLI, the pods), the client is the SDK's own.
//! `hf://` and `modelscope://` sources are not guarded: the hub reads
//! those only at the model hubs the platform configured.

use std::error::Error as StdError;
use std::net::IpAddr;

use aws_smithy_http_client::{Builder, tls};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::FetchError;

/// Which addresses a guarded client may connect to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectGuard {
    allows: fn(IpAddr) -> bool,
    /// What a refused address is, after "…, which is" in errors.
    refused_as: &'static str,
}

impl ConnectGuard {
    /// Connects only to addresses `allows` accepts; a refusal says the
    /// address is `refused_as` (e.g. "not a public address").
    pub fn new(allows: fn(IpAddr) -> bool, refused_as: &'static str) -> ConnectGuard {
        ConnectGuard { allows, refused_as }
    }

    /// Refuses `url` when its host is an address the guard does not allow
    /// (a name is checked when it is resolved, at each connection).
    pub(crate) fn check_endpoint(&self, url: &str) -> Result<(), FetchError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| {
            FetchError::BadSource(format!(
                "endpoint {url:?} is not a URL, like https://minio.example.com:9000"
            ))
        })?;
        // The parser has normalised an address host already (`2130706433`
        // is 127.0.0.1 here), as the client would read it.
        let host = parsed.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if (self.allows)(ip) {
            Ok(())
        } else {
            Err(FetchError::Source(
                Refused {
                    host: url.to_owned(),
                    ip,
                    refused_as: self.refused_as,
                    named: true,
                }
                .to_string(),
            ))
        }
    }

    /// An HTTPS (and HTTP) client for the SDK that resolves through this
    /// guard and uses no proxy.
    pub(crate) fn http_client(&self) -> SharedHttpClient {
        Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            // No proxy is configured here, so none is used; the SDK's
            // default client would read the proxy variables.
            .build_with_resolver(Resolver { guard: *self })
    }
}

/// A connection the guard refused: the host and the address at fault.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    host: String,
    ip: IpAddr,
    refused_as: &'static str,
    /// The endpoint names the address itself.
    named: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Refused {
            host,
            ip,
            refused_as,
            named,
        } = self;
        if *named {
            write!(f, "the endpoint {host} names {ip}, which is {refused_as}")
        } else {
            write!(
                f,
                "the store's host {host} resolves to {ip}, which is {refused_as}"
            )
        }
    }
}

impl StdError for Refused {}

/// What the guard refused, if that is why `error` (an SDK error, with
/// the resolver's error somewhere among its sources) happened.
pub(crate) fn refusal(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.to_string());
        }
        next = e.source();
    }
    None
}

/// Resolves with the system's resolver and answers only when every
/// address passes the guard: what it answers is what the client connects
/// to.
#[derive(Debug, Clone)]
struct Resolver {
    guard: ConnectGuard,
}

impl ResolveDns for Resolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move {
            let found: Vec<IpAddr> = tokio::net::lookup_host((name, 0))
                .await
                .map_err(ResolveDnsError::new)?
                .map(|a| a.ip())
                .collect();
            if found.is_empty() {
                return Err(ResolveDnsError::new(format!("{name} has no address")));
            }
            if let Some(&ip) = found.iter().find(|ip| !(self.guard.allows)(**ip)) {
                return Err(ResolveDnsError::new(Refused {
                    host: name.to_owned(),
                    ip,
                    refused_as: self.guard.refused_as,
                    named: false,
                }));
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED_AS: &str = "not allowed here";

    fn loopback_only() -> ConnectGuard {
        ConnectGuard::new(|ip| ip.is_loopback(), REFUSED_AS)
    }

    fn nothing() -> ConnectGuard {
        ConnectGuard::new(|_| false, REFUSED_AS)
    }

    #[tokio::test]
    async fn names_resolve_only_to_addresses_the_guard_allows() {
        let allowed = Resolver {
            guard: loopback_only(),
        };
        let found = allowed.resolve_dns("localhost").await.unwrap();
        assert!(!found.is_empty() && found.iter().all(IpAddr::is_loopback));

        let refused = Resolver { guard: nothing() };
        let error = refused.resolve_dns("localhost").await.unwrap_err();
        let said = refusal(&error).expect("the refusal is found among the sources");
        assert!(
            said.starts_with("the store's host localhost resolves to ")
                && said.ends_with(REFUSED_AS),
            "{said}"
        );
    }

    #[test]
    fn an_endpoint_naming_an_address_is_checked_in_every_form() {
        let guard = ConnectGuard::new(
            |ip| !ip.to_canonical().is_loopback() && !ip.is_unspecified(),
            REFUSED_AS,
        );
        for url in [
            "http://127.0.0.1:9000",
            "http://2130706433",
            "http://0x7f.1",
            "http://[::1]:9000",
            "http://[::ffff:127.0.0.1]",
            "https://0.0.0.0",
        ] {
            let error = guard.check_endpoint(url).unwrap_err().to_string();
            assert!(error.contains(REFUSED_AS), "{url}: {error}");
        }
        // Names are the resolver's to check; a public address passes.
        for url in [
            "http://localhost:9000",
            "https://8.8.8.8",
            "https://[2606:4700::1111]",
        ] {
            guard.check_endpoint(url).unwrap();
        }
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server on loopback that answers every request with `answer` and
    /// counts the connections it takes; its port.
    async fn server(answer: String) -> (u16, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (port, accepted)
    }

    /// Lists a bucket at `http://localhost:<port>` through the SDK's
    /// client built on `guard`: the error it ends with.
    async fn list(guard: ConnectGuard, port: u16) -> impl StdError + 'static {
        let endpoint = crate::endpoint::Endpoint {
            url: Some(format!("http://localhost:{port}")),
            region: "us-east-1".to_owned(),
            path_style: true,
        };
        let keys = aws_sdk_s3::config::Credentials::new("AKIDGUARD", "secret", None, None, "t");
        let credentials = aws_credential_types::provider::SharedCredentialsProvider::new(keys);
        let client = crate::s3::client(&endpoint, credentials, Some(&guard)).unwrap();
        client
            .list_objects_v2()
            .bucket("models")
            .send()
            .await
            .unwrap_err()
    }

    /// The SDK's client built on the guard: a name that resolves to an
    /// allowed address is connected to, a refused one never is.
    #[tokio::test]
    async fn the_client_connects_only_where_the_guard_allows() {
        let forbidden = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        let (port, accepted) = server(forbidden.to_owned()).await;

        let refused = list(nothing(), port).await;
        let said = refusal(&refused).expect("refused by the guard");
        assert!(said.contains("localhost resolves to"), "{said}");
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing connected");

        let reached = list(loopback_only(), port).await;
        assert!(refusal(&reached).is_none());
        assert!(accepted.load(Ordering::SeqCst) >= 1, "it connected");
    }

    /// A store that answers with a redirect elsewhere is not followed
    /// there: the 3xx is its answer.
    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let (elsewhere, followed) = server(ok.to_owned()).await;
        let redirect = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{elsewhere}/models\r\n\
             content-length: 0\r\n\r\n"
        );
        let (port, asked) = server(redirect).await;
        let _ = list(loopback_only(), port).await;
        assert!(asked.load(Ordering::SeqCst) >= 1);
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
    }
}
