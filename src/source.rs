//! How the commands that read a model's source reach it (`fetch`, `model`,
//! `plan --source`): the object store's endpoint and region, the CAs to
//! trust, and the credentials the environment holds, as the AWS SDKs and
//! the hubs' own tools read them.

use std::path::PathBuf;

use clap::Args;
use modelfleet_fetch::Env;
use modelfleet_fetch::endpoint::EndpointOverrides;

#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// The object store's endpoint URL [default: AWS_ENDPOINT_URL, else the
    /// cloud's endpoint for the region].
    #[arg(long)]
    endpoint: Option<String>,
    /// The bucket's region (us-east-1, cn-hangzhou, cn-north-4,
    /// ap-guangzhou …) [default: AWS_REGION].
    #[arg(long)]
    region: Option<String>,
    /// Address the bucket in the path rather than the host name [default:
    /// on for --endpoint or AWS_ENDPOINT_URL, off for the clouds' own].
    #[arg(long)]
    path_style: Option<bool>,
    /// Use the cloud's endpoint inside its network where it has one
    /// (Alibaba Cloud OSS's -internal): faster, usually free of egress.
    #[arg(long)]
    internal_endpoint: bool,
    /// PEM certificates of CAs to trust besides the system's, for hf://,
    /// modelscope:// and https:// (a mirror behind a private CA).
    #[arg(long, env = "MODELFLEET_FETCH_CA_FILE")]
    ca_file: Option<PathBuf>,
}

impl SourceArgs {
    pub fn overrides(&self) -> EndpointOverrides {
        EndpointOverrides {
            url: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            internal: self.internal_endpoint,
        }
    }

    /// This process's environment, with `--ca-file` over it.
    pub fn env(&self) -> Env {
        Env {
            ca_file: self.ca_file.clone(),
            ..Env::from_process()
        }
    }
}
