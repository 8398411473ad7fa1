//! `modelfleet audit verify`: checks the audit trail's hash chain in the
//! hub's database (by default the one `serve` keeps in its data directory)
//! and in exported files, and names the first record or file that does not
//! verify. `modelfleet audit report`: the MLPS 2.0 level-3 report.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use modelfleet::hub::HubOptions;
use modelfleet_api::audit;
use modelfleet_api::compliance::{self, ReportContext};
use modelfleet_api::store::ChainReport;
use modelfleet_api::{Actor, ApiSettings, ReportRenderer as _, Store};
use modelfleet_web::compliance::HubReportRenderer;

use crate::serve::Storage;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the audit chain in the database and, with --export, in an
    /// export location. Exits 0 when everything verifies, 1 when something
    /// does not (naming the first record or file), 2 on bad input.
    Verify(Box<VerifyArgs>),
    /// Evaluate the MLPS 2.0 (等保2.0) level-3 items against the hub's
    /// database and settings, and write the report as JSON, HTML or PDF.
    Report(Box<ReportArgs>),
}

#[derive(Debug, Args)]
struct ReportArgs {
    #[command(flatten)]
    storage: Storage,
    /// `json`, `html` or `pdf`.
    #[arg(long, default_value = "json", value_parser = ["json", "html", "pdf"])]
    format: String,
    /// Write the report here instead of standard output (a PDF needs a file).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The hub's settings, as `serve` was started with (they are evidence).
    #[command(flatten)]
    settings: ApiSettings,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    storage: Storage,
    /// Also verify the exports at this location (`file:///dir` or
    /// `s3://bucket/prefix`; S3 settings as for `serve`): signatures, the
    /// chain of digests, every file's SHA-256 and the records' chain.
    #[arg(long, value_name = "LOCATION")]
    export: Option<String>,
    /// The platform's audit public key (base64, from
    /// `GET /api/v1/audit/public-key`), to verify exports without the
    /// database. By default it is read from the database.
    #[arg(long, value_name = "BASE64")]
    public_key: Option<String>,
    /// Only the exports: do not look for a database.
    #[arg(long, requires = "export")]
    export_only: bool,
    #[command(flatten)]
    settings: ApiSettings,
}

/// The exit code for "checked, and something does not verify".
const NOT_VERIFIED: u8 = 1;

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify(args) => verify(*args),
        AuditCommand::Report(args) => report(*args),
    }
}

/// The hub's database URL, refusing a data directory without one.
fn database_url(storage: Storage) -> anyhow::Result<String> {
    let mut options = HubOptions::new(storage.data_dir, ([127, 0, 0, 1], 0).into());
    options.database_url = storage.database_url;
    if options.database_url.is_none() {
        let file = options.data_dir.join(modelfleet::hub::DATABASE_FILE);
        if !file.is_file() {
            bail!(
                "no hub database at {}: pass the --data-dir that `modelfleet serve` used, or --database-url",
                file.display()
            );
        }
    }
    Ok(options.database_url())
}

fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if args.format == "pdf" && args.output.is_none() {
        bail!("a PDF needs --output FILE");
    }
    let data_dir = args.storage.data_dir.clone();
    let url = database_url(args.storage)?;
    let mut settings = args.settings;
    if settings.audit_export.is_none() {
        let dir = std::path::absolute(data_dir.join(modelfleet::hub::AUDIT_EXPORT_DIR))
            .context("cannot resolve the audit export directory")?;
        settings.audit_export = Some(format!("file://{}", dir.display()));
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let store = Store::connect(&url)
            .await
            .context("cannot open the hub's database")?;
        let context = ReportContext {
            settings: &settings,
            login_policy: store.login_policy(),
            export_location: settings.audit_export.as_deref(),
            cluster_rights: None,
        };
        let report = compliance::evaluate(&store, &Actor::system("audit-report"), &context)
            .await
            .context("cannot evaluate the report");
        store.close().await;
        report
    })?;
    let renderer = HubReportRenderer::system();
    let bytes = match args.format.as_str() {
        "html" => renderer.html(&report).into_bytes(),
        "pdf" => renderer.pdf(&report).map_err(anyhow::Error::msg)?,
        _ => {
            let mut json = serde_json::to_vec_pretty(&report)?;
            json.push(b'\n');
            json
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout()
            .write_all(&bytes)
            .context("cannot write the report")?,
    }
    eprintln!(
        "MLPS 2.0 level 3: {} passed, {} failed, {} need manual evidence",
        report.passed, report.failed, report.needs_manual_evidence
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let url = if args.export_only {
        None
    } else {
        Some(database_url(args.storage)?)
    };
    let target = match &args.export {
        Some(location) => {
            let settings = ApiSettings {
                audit_export: Some(location.clone()),
                ..args.settings.clone()
            };
            settings
                .audit_target()
                .context("cannot use the export location")?
        }
        None => None,
    };
    let public_key = args
        .public_key
        .as_deref()
        .map(|k| audit::PublicKeyInfo::decode(k).map_err(anyhow::Error::msg))
        .transpose()
        .context("--public-key is not an Ed25519 public key in base64")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut verified = true;
        let mut stored_key = None;
        let mut last_export = None;
        if let Some(url) = &url {
            let store = Store::connect(url)
                .await
                .context("cannot open the hub's database")?;
            let report = store
                .verify_audit()
                .await
                .context("cannot read the audit trail")?;
            stored_key = store.audit_public_key().await?.map(|(_, key)| key);
            last_export = store.last_audit_export().await?;
            store.close().await;
            verified &= print_database(&report);
        }
        if let Some(target) = &target {
            let Some(key) = public_key.or(stored_key) else {
                bail!("no public key to verify the exports with: pass --public-key (GET /api/v1/audit/public-key)");
            };
            match audit::verify_export(target, &key).await {
                Ok(v) => {
                    println!(
                        "exports: {} digests, {} files, {} records ({}-{}) verified",
                        v.digests, v.files, v.records, v.first_seq, v.last_seq
                    );
                    if let Some(last) = &last_export
                        && target.key(&last.digest_key) != v.last_digest
                        && last.digest_key != v.last_digest
                    {
                        println!(
                            "exports: NOT VERIFIED: the database's newest export is {} but the location ends at {} (digests removed from the end)",
                            last.digest_key, v.last_digest
                        );
                        verified = false;
                    }
                }
                Err(e) => {
                    println!("exports: NOT VERIFIED: {e}");
                    verified = false;
                }
            }
        }
        Ok(if verified {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(NOT_VERIFIED)
        })
    })
}

/// Prints what verifying the database found; whether it verified.
fn print_database(report: &ChainReport) -> bool {
    let start = if report.from_checkpoint > 0 {
        format!(
            " (records up to {} were exported and pruned)",
            report.from_checkpoint
        )
    } else {
        String::new()
    };
    match &report.broken {
        None => {
            println!(
                "database: {} records verified, chain intact through record {}{start}",
                report.checked, report.verified_through
            );
            true
        }
        Some(broken) => {
            println!("database: NOT VERIFIED: {broken}");
            println!(
                "  {} records verified before it{start}; the chain's head is record {}",
                report.checked, report.head
            );
            false
        }
    }
}
