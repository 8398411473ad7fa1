//! Where each cloud's object store answers and how buckets are addressed.
//! All four speak the S3 protocol; what differs is the endpoint's host
//! name, the addressing style and the region names
//! (`docs/fetch.md` gives the table and where it comes from).

use modelfleet_core::crd::SourceScheme;

/// How the S3 client reaches one source's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `None`: the SDK's own endpoint for the region (AWS).
    pub url: Option<String>,
    pub region: String,
    /// Bucket in the path (`host/bucket/key`) rather than the host name
    /// (`bucket.host/key`).
    pub path_style: bool,
}

/// What the caller may set; each `None` takes the environment, then the
/// cloud's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    pub url: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    /// Use the cloud's endpoint inside its network (OSS's `-internal`):
    /// faster, and usually free of egress charges.
    pub internal: bool,
}

/// The environment variables the AWS SDKs read for an endpoint and region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

impl Environment {
    /// `AWS_ENDPOINT_URL_S3` (then `AWS_ENDPOINT_URL`) and `AWS_REGION`
    /// (then `AWS_DEFAULT_REGION`), as every AWS SDK reads them.
    pub fn from_process() -> Environment {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        Environment {
            endpoint_url: var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "no region for {scheme}://: give --region (e.g. {example}) or set AWS_REGION; the \
         {cloud} endpoint depends on it"
    )]
    NoRegion {
        scheme: &'static str,
        cloud: &'static str,
        example: &'static str,
    },
    #[error(
        "region {0:?} is not a region name: lower-case letters, digits and '-', like us-east-1"
    )]
    BadRegion(String),
    #[error(
        "endpoint {0:?} must be an http:// or https:// URL, like https://oss-cn-hangzhou.aliyuncs.com"
    )]
    BadUrl(String),
    #[error("{0}:// sources are not object stores; no endpoint applies")]
    NotObjectStore(&'static str),
}

fn is_region(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Works out the endpoint of `scheme`'s store: an explicit URL wins, then
/// `AWS_ENDPOINT_URL`, then the cloud's public (or internal) endpoint for
/// the region. An explicit or environment URL is addressed path-style
/// unless told otherwise (the S3-compatible servers one points at, MinIO
/// and the like, expect it); the clouds' own endpoints virtual-hosted.
pub fn resolve(
    scheme: SourceScheme,
    overrides: &EndpointOverrides,
    env: &Environment,
) -> Result<Endpoint, EndpointError> {
    let (name, cloud, example) = match scheme {
        SourceScheme::S3 => ("s3", "AWS S3", "us-east-1"),
        SourceScheme::Oss => ("oss", "Alibaba Cloud OSS", "cn-hangzhou"),
        SourceScheme::Obs => ("obs", "Huawei Cloud OBS", "cn-north-4"),
        SourceScheme::Cos => ("cos", "Tencent Cloud COS", "ap-guangzhou"),
        SourceScheme::HuggingFace => return Err(EndpointError::NotObjectStore("hf")),
        SourceScheme::ModelScope => return Err(EndpointError::NotObjectStore("modelscope")),
        SourceScheme::Https => return Err(EndpointError::NotObjectStore("https")),
        SourceScheme::Pvc => return Err(EndpointError::NotObjectStore("pvc")),
    };
    let region = overrides
        .region
        .clone()
        .or_else(|| env.region.clone())
        .map(|r| r.trim().to_owned());
    let explicit = overrides.url.clone().or_else(|| env.endpoint_url.clone());
    if let Some(url) = explicit {
        let url = url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(' ') {
            return Err(EndpointError::BadUrl(url));
        }
        let region = match region {
            Some(r) if !is_region(&r) => return Err(EndpointError::BadRegion(r)),
            Some(r) => r,
            // S3-compatible servers of one's own rarely care; SigV4 needs one.
            None => "us-east-1".to_owned(),
        };
        return Ok(Endpoint {
            url: Some(url),
            region,
            path_style: overrides.path_style.unwrap_or(true),
        });
    }
    let region = match region {
        Some(r) if !is_region(&r) => return Err(EndpointError::BadRegion(r)),
        Some(r) => r,
        None => {
            return Err(EndpointError::NoRegion {
                scheme: name,
                cloud,
                example,
            });
        }
    };
    let url = match scheme {
        // The SDK knows AWS's endpoints, China's `.amazonaws.com.cn` too.
        SourceScheme::S3 => None,
        SourceScheme::Oss if overrides.internal => {
            Some(format!("https://oss-{region}-internal.aliyuncs.com"))
        }
        SourceScheme::Oss => Some(format!("https://oss-{region}.aliyuncs.com")),
        SourceScheme::Obs => Some(format!("https://obs.{region}.myhuaweicloud.com")),
        SourceScheme::Cos => Some(format!("https://cos.{region}.myqcloud.com")),
        SourceScheme::HuggingFace
        | SourceScheme::ModelScope
        | SourceScheme::Https
        | SourceScheme::Pvc => None,
    };
    Ok(Endpoint {
        url,
        region,
        path_style: overrides.path_style.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regional(scheme: SourceScheme, region: &str) -> Endpoint {
        let overrides = EndpointOverrides {
            region: Some(region.to_owned()),
            ..Default::default()
        };
        resolve(scheme, &overrides, &Environment::default()).unwrap()
    }

    #[test]
    fn each_cloud_answers_at_its_own_regional_endpoint_virtual_hosted() {
        let cases = [
            (SourceScheme::S3, "us-east-1", None),
            (SourceScheme::S3, "cn-north-1", None),
            (
                SourceScheme::Oss,
                "cn-hangzhou",
                Some("https://oss-cn-hangzhou.aliyuncs.com"),
            ),
            (
                SourceScheme::Oss,
                "ap-southeast-1",
                Some("https://oss-ap-southeast-1.aliyuncs.com"),
            ),
            (
                SourceScheme::Obs,
                "cn-north-4",
                Some("https://obs.cn-north-4.myhuaweicloud.com"),
            ),
            (
                SourceScheme::Obs,
                "ap-southeast-3",
                Some("https://obs.ap-southeast-3.myhuaweicloud.com"),
            ),
            (
                SourceScheme::Cos,
                "ap-guangzhou",
                Some("https://cos.ap-guangzhou.myqcloud.com"),
            ),
            (
                SourceScheme::Cos,
                "ap-shanghai",
                Some("https://cos.ap-shanghai.myqcloud.com"),
            ),
        ];
        for (scheme, region, url) in cases {
            let e = regional(scheme, region);
            assert_eq!(e.url.as_deref(), url, "{scheme:?} {region}");
            assert_eq!(e.region, region);
            assert!(!e.path_style, "{scheme:?} is virtual-hosted");
        }
    }

    #[test]
    fn oss_inside_its_network_uses_the_internal_endpoint() {
        let overrides = EndpointOverrides {
            region: Some("cn-beijing".into()),
            internal: true,
            ..Default::default()
        };
        let e = resolve(SourceScheme::Oss, &overrides, &Environment::default()).unwrap();
        assert_eq!(
            e.url.as_deref(),
            Some("https://oss-cn-beijing-internal.aliyuncs.com")
        );
    }

    #[test]
    fn the_environment_and_flags_override_in_that_order() {
        let env = Environment {
            endpoint_url: Some("http://127.0.0.1:9000/".into()),
            region: Some("eu-west-1".into()),
        };
        let e = resolve(SourceScheme::Cos, &EndpointOverrides::default(), &env).unwrap();
        assert_eq!(e.url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(e.region, "eu-west-1");
        assert!(e.path_style, "a URL of one's own is addressed path-style");
        let flags = EndpointOverrides {
            url: Some("https://minio.example".into()),
            region: Some("cn-hangzhou".into()),
            path_style: Some(false),
            internal: false,
        };
        let e = resolve(SourceScheme::Oss, &flags, &env).unwrap();
        assert_eq!(e.url.as_deref(), Some("https://minio.example"));
        assert_eq!(e.region, "cn-hangzhou");
        assert!(!e.path_style);
        // The region from the environment picks the cloud's endpoint.
        let env = Environment {
            endpoint_url: None,
            region: Some("cn-shanghai".into()),
        };
        let e = resolve(SourceScheme::Oss, &EndpointOverrides::default(), &env).unwrap();
        assert_eq!(
            e.url.as_deref(),
            Some("https://oss-cn-shanghai.aliyuncs.com")
        );
    }

    #[test]
    fn a_missing_or_bad_region_or_url_says_what_to_give() {
        let none = resolve(
            SourceScheme::Obs,
            &EndpointOverrides::default(),
            &Environment::default(),
        )
        .unwrap_err();
        assert!(
            none.to_string().contains("--region (e.g. cn-north-4)"),
            "{none}"
        );
        let bad = EndpointOverrides {
            region: Some("US East".into()),
            ..Default::default()
        };
        let e = resolve(SourceScheme::S3, &bad, &Environment::default()).unwrap_err();
        assert_eq!(e, EndpointError::BadRegion("US East".into()));
        let url = EndpointOverrides {
            url: Some("ftp://x".into()),
            ..Default::default()
        };
        let e = resolve(SourceScheme::S3, &url, &Environment::default()).unwrap_err();
        assert!(matches!(e, EndpointError::BadUrl(_)));
        assert!(matches!(
            resolve(
                SourceScheme::Pvc,
                &EndpointOverrides::default(),
                &Environment::default()
            ),
            Err(EndpointError::NotObjectStore("pvc"))
        ));
    }
}
