//! The one click: a catalog of models as cards; a model's page shows the
//! ranked plans across every cluster and cloud (what `POST /plans`
//! answers) with a deploy form whose defaults need no change, and an
//! "advanced" section to re-plan with other serving and placement options.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use modelfleet_api::AppState;
use modelfleet_api::http::v1::plans::PlanReportView;
use modelfleet_api::ids::TenantId;
use modelfleet_api::service::{CreateRequest, PlanRequest};
use modelfleet_core::contract::tenancy;
use modelfleet_core::crd::{Placement, Serving};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::model::{ModelArch, catalog};
use modelfleet_core::planner::SpotPolicy;
use modelfleet_core::precision::{Precision, PrecisionChoice};
use serde::Deserialize;

use super::i18n::{Lang, Table};
use super::page::{Chrome, PageError, Viewer};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deploy", get(catalog_page))
        .route(
            "/deploy/source",
            get(super::deploy_source::page).post(super::deploy_source::deploy),
        )
        .route("/deploy/{model}", get(model_page).post(deploy))
}

/// One model of the catalog, as its card shows it.
#[derive(Debug)]
pub struct ModelCard {
    pub id: String,
    pub name: String,
    /// `70B`, `671B (37B active)`.
    pub size: String,
    pub moe: bool,
    pub context: u32,
    /// Weights in GB at the published precision, and at 4 bits.
    pub weights_gb: u64,
    pub weights_int4_gb: u64,
}

fn weights_gb(model: &ModelArch, precision: Precision) -> u64 {
    (model.total_params.0 * precision.bits() / 8).div_ceil(1_000_000_000)
}

impl ModelCard {
    pub(super) fn of(model: &ModelArch) -> ModelCard {
        let size = match model.active_params {
            Some(active) if model.is_moe() => format!("{} ({} active)", model.total_params, active),
            _ => model.total_params.to_string(),
        };
        ModelCard {
            id: model.id.clone(),
            name: model.display_name().to_owned(),
            size,
            moe: model.is_moe(),
            context: model.max_context,
            weights_gb: weights_gb(model, model.native_precision),
            weights_int4_gb: weights_gb(model, Precision::Int4),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deploy/catalog.html")]
pub(super) struct CatalogPage {
    c: Chrome,
    models: Vec<ModelCard>,
    /// The source form as it was sent (empty at first): the source, and
    /// the tenant it is for (platform staff acting for one).
    source: String,
    tenant: String,
    /// The tenant's source credentials the model is read with.
    credentials: Credentials,
    /// Why the source could not be read.
    error: Option<String>,
}

/// The catalog, and the source form filled with `source` and `options`'
/// tenant and credential, saying `error` when it was refused.
pub(super) async fn catalog_with(
    state: &AppState,
    viewer: &Viewer,
    options: &Options,
    source: &str,
    error: Option<String>,
) -> CatalogPage {
    CatalogPage {
        c: viewer.chrome("deploy", TEXT),
        models: catalog().iter().map(ModelCard::of).collect(),
        source: source.to_owned(),
        tenant: options.tenant.clone(),
        credentials: credential_choices(state, viewer, options).await,
        error,
    }
}

/// `GET /deploy`: the catalog's cards, and the form taking a model's
/// source (platform staff name the tenant, `?tenant=<id>`).
async fn catalog_page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> CatalogPage {
    let options = parse_options(query.as_deref().unwrap_or(""))
        .map(|(options, _)| options)
        .unwrap_or_default();
    catalog_with(&state, &viewer, &options, "", None).await
}

/// The advanced options, as the model page's query string and the deploy
/// form's hidden fields carry them. Empty means "the planner decides".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    #[serde(default)]
    pub replicas: String,
    #[serde(default)]
    pub max_model_len: String,
    #[serde(default)]
    pub concurrency: String,
    #[serde(default)]
    pub precision: String,
    /// One per checked box.
    #[serde(default)]
    pub clouds: Vec<String>,
    #[serde(default)]
    pub regions: String,
    #[serde(default)]
    pub spot: String,
    /// The tenant to deploy for (platform admins).
    #[serde(default)]
    pub tenant: String,
    /// The tenant's source credential to fetch the weights with (a model
    /// read from its source); empty for none.
    #[serde(default)]
    pub credential: String,
}

/// Form and query strings repeat a checkbox's name once per box; serde's
/// urlencoded reader does not gather them, so this does.
pub(super) fn parse_options(query: &str) -> Result<(Options, Vec<(String, String)>), String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| format!("the form could not be read: {e}"))?;
    let mut options = Options::default();
    for (name, value) in &pairs {
        let value = value.trim().to_owned();
        match name.as_str() {
            "replicas" => options.replicas = value,
            "max_model_len" => options.max_model_len = value,
            "concurrency" => options.concurrency = value,
            "precision" => options.precision = value,
            "clouds" if !value.is_empty() => options.clouds.push(value),
            "regions" => options.regions = value,
            "spot" => options.spot = value,
            "tenant" => options.tenant = value,
            "credential" => options.credential = value,
            _ => {}
        }
    }
    Ok((options, pairs))
}

fn number(field: &str, text: &str, lang: Lang) -> Result<Option<u32>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u32>().map(Some).map_err(|_| {
        format!(
            "{}: {} ({text:?})",
            field,
            lang.t(TEXT, "deploy.not_a_number")
        )
    })
}

/// The API's request parts the options make, or what is wrong with them.
#[derive(Debug)]
struct Asked {
    replicas: Option<u32>,
    serving: Serving,
    placement: Placement,
    tenant: Option<TenantId>,
    /// `modelfleet-source-<name>`: the Secret the hub writes for the
    /// tenant's source credential `<name>`.
    source_secret: Option<String>,
}

impl Asked {
    fn request(self, model: &str, source: Option<&str>) -> PlanRequest {
        PlanRequest {
            model: model.to_owned(),
            source: source.map(str::to_owned),
            source_secret: self.source_secret,
            replicas: self.replicas,
            serving: self.serving,
            placement: self.placement,
            tenant: self.tenant,
            ..PlanRequest::default()
        }
    }
}

impl Options {
    fn asked(&self, lang: Lang) -> Result<Asked, String> {
        let precision = match self.precision.as_str() {
            "" | "auto" => None,
            p => Some(PrecisionChoice::Fixed(
                Precision::ALL
                    .into_iter()
                    .find(|x| x.name() == p)
                    .ok_or_else(|| {
                        format!("precision: {} ({p:?})", lang.t(TEXT, "deploy.bad_choice"))
                    })?,
            )),
        };
        let clouds = self
            .clouds
            .iter()
            .map(|c| {
                c.parse::<Cloud>()
                    .map_err(|_| format!("clouds: {} ({c:?})", lang.t(TEXT, "deploy.bad_choice")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spot = match self.spot.as_str() {
            "" => None,
            "never" => Some(SpotPolicy::Never),
            "allowed" => Some(SpotPolicy::Allowed),
            "preferred" => Some(SpotPolicy::Preferred),
            s => {
                return Err(format!(
                    "spot: {} ({s:?})",
                    lang.t(TEXT, "deploy.bad_choice")
                ));
            }
        };
        let tenant =
            match self.tenant.as_str() {
                "" => None,
                t => Some(t.parse::<TenantId>().map_err(|_| {
                    format!("tenant: {} ({t:?})", lang.t(TEXT, "deploy.bad_choice"))
                })?),
            };
        let source_secret = match self.credential.as_str() {
            "" => None,
            name => {
                tenancy::check_source_credential_name(name)
                    .map_err(|reason| format!("{}: {reason}", lang.t(TEXT, "deploy.credential")))?;
                Some(tenancy::source_credential_secret_name(name))
            }
        };
        Ok(Asked {
            replicas: number("replicas", &self.replicas, lang)?,
            serving: Serving {
                precision: precision.unwrap_or_default(),
                max_model_len: number("max_model_len", &self.max_model_len, lang)?,
                concurrency: number("concurrency", &self.concurrency, lang)?,
                ..Serving::default()
            },
            placement: Placement {
                clouds,
                regions: self
                    .regions
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
                spot: spot.unwrap_or_default(),
                ..Placement::default()
            },
            tenant,
            source_secret,
        })
    }

    fn has_cloud(&self, cloud: &str) -> bool {
        self.clouds.iter().any(|c| c == cloud)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deploy/model.html")]
pub(super) struct ModelPage {
    c: Chrome,
    model: ModelCard,
    /// Where both forms go: `/deploy/<id>`, or `/deploy/source`.
    action: String,
    options: Options,
    /// The options as hidden form fields, `(name, value)`.
    hidden: Vec<(String, String)>,
    report: Option<PlanReportView>,
    name: String,
    error: Option<String>,
    /// `(choice, chosen)`.
    clouds: Vec<(&'static str, bool)>,
    precisions: Vec<(&'static str, bool)>,
    /// A model read from its source: the tenant's source credentials to
    /// fetch it with; none for a catalog model.
    credentials: Option<Credentials>,
}

/// The source credentials a form offers (`console/deploy/credential.html`):
/// those of the tenant it is for, and the page listing them.
#[derive(Debug)]
pub(super) struct Credentials {
    /// `(name, chosen)`.
    choices: Vec<(String, bool)>,
    href: String,
}

impl ModelPage {
    /// Basis points as a percentage, exactly: `1250` is `12.50 %`.
    fn percent(&self, basis_points: &u32) -> String {
        format!("{}.{:02} %", basis_points / 100, basis_points % 100)
    }
}

/// A name the API accepts, from the model id, with a random tail so two
/// clicks do not collide.
pub(super) fn default_name(model: &str) -> String {
    let mut random = [0u8; 2];
    getrandom::fill(&mut random).expect("the operating system has randomness");
    let base: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let base = base.trim_matches('-');
    let base = &base[..base.len().min(30)];
    format!(
        "{}-{:04x}",
        base.trim_end_matches('-'),
        u16::from_be_bytes(random)
    )
}

fn find_model(lang: Lang, id: &str) -> Result<&'static ModelArch, PageError> {
    ModelArch::find(id).map_err(|e| PageError::new(lang, StatusCode::NOT_FOUND, e.to_string()))
}

/// A model's plans and deploy form; `source` names where a model the
/// catalog does not know was read from.
pub(super) async fn plan_page(
    state: &AppState,
    viewer: &Viewer,
    model: &ModelArch,
    source: Option<&str>,
    options: Options,
    name: String,
    error: Option<String>,
) -> ModelPage {
    let mut hidden = hidden_fields(&options);
    if let Some(source) = source {
        hidden.push(("source".to_owned(), source.to_owned()));
    }
    let (report, error) = match options.asked(viewer.lang) {
        Err(message) => (None, Some(message)),
        Ok(asked) => {
            match state
                .hub()
                .plan(&viewer.caller, asked.request(&model.id, source))
                .await
            {
                Ok(planned) => (Some(PlanReportView::from(planned)), error),
                Err(e) => (None, Some(e.detail().to_owned())),
            }
        }
    };
    let clouds = Cloud::ALL
        .iter()
        .filter(|c| **c != Cloud::Generic)
        .map(|c| (c.name(), options.has_cloud(c.name())))
        .collect();
    let precisions = Precision::ALL
        .iter()
        .map(|p| (p.name(), options.precision == p.name()))
        .collect();
    let credentials = match source {
        Some(_) => Some(credential_choices(state, viewer, &options).await),
        None => None,
    };
    ModelPage {
        c: viewer.chrome("deploy", TEXT),
        model: ModelCard::of(model),
        action: match source {
            Some(_) => "/deploy/source".to_owned(),
            None => format!("/deploy/{}", model.id),
        },
        options,
        hidden,
        report,
        name,
        error,
        clouds,
        precisions,
        credentials,
    }
}

/// The source credentials of the tenant a form is for (the viewer's, or
/// the one platform staff name; never another's), the chosen one marked,
/// and the page listing them. A tenant whose credentials cannot be read
/// offers none: reading or planning says what is wrong with the tenant.
async fn credential_choices(state: &AppState, viewer: &Viewer, options: &Options) -> Credentials {
    let named = options.tenant.parse::<TenantId>().ok();
    let Ok(tenant) = viewer.caller.tenant(named) else {
        return Credentials {
            choices: Vec::new(),
            href: "/credentials".to_owned(),
        };
    };
    let href = if viewer.caller.actor.tenant.is_some() {
        "/credentials".to_owned()
    } else {
        format!("/credentials?tenant={tenant}")
    };
    let choices = match state.hub().source_credentials(&viewer.caller, tenant).await {
        Ok(list) => list
            .into_iter()
            .map(|c| {
                let chosen = c.name == options.credential;
                (c.name, chosen)
            })
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "the deploy page could not list source credentials");
            Vec::new()
        }
    };
    Credentials { choices, href }
}

fn hidden_fields(options: &Options) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for (name, value) in [
        ("replicas", &options.replicas),
        ("max_model_len", &options.max_model_len),
        ("concurrency", &options.concurrency),
        ("precision", &options.precision),
        ("regions", &options.regions),
        ("spot", &options.spot),
        ("tenant", &options.tenant),
    ] {
        if !value.is_empty() {
            fields.push((name.to_owned(), value.clone()));
        }
    }
    for cloud in &options.clouds {
        fields.push(("clouds".to_owned(), cloud.clone()));
    }
    fields
}

async fn model_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<ModelPage, PageError> {
    let model = find_model(viewer.lang, &model)?;
    let (options, error) = match parse_options(query.as_deref().unwrap_or("")) {
        Ok((options, _)) => (options, None),
        Err(message) => (Options::default(), Some(message)),
    };
    Ok(plan_page(
        &state,
        &viewer,
        model,
        None,
        options,
        default_name(&model.id),
        error,
    )
    .await)
}

/// Deploys on the best plan the quota allows (the API's
/// `POST /deployments`) and shows the deployment; a refusal shows the
/// plans again with the reason.
async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let model = match find_model(viewer.lang, &model) {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    let text = String::from_utf8_lossy(&body);
    let (options, fields) = match parse_options(&text) {
        Ok(parsed) => parsed,
        Err(message) => {
            return PageError::new(viewer.lang, StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    deploy_model(state, viewer, model, None, options, &fields).await
}

/// Deploys `model` as the form asks; a refusal shows its plans again.
pub(super) async fn deploy_model(
    state: AppState,
    viewer: Viewer,
    model: &ModelArch,
    source: Option<&str>,
    options: Options,
    fields: &[(String, String)],
) -> Response {
    let name = fields
        .iter()
        .find(|(field, _)| field == "name")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    let refused = |status: StatusCode, message: String, options: Options, name: String| {
        let state = state.clone();
        let viewer = viewer.clone();
        async move {
            let page =
                plan_page(&state, &viewer, model, source, options, name, Some(message)).await;
            (status, page).into_response()
        }
    };
    let asked = match options.asked(viewer.lang) {
        Ok(asked) => asked,
        Err(message) => {
            return refused(StatusCode::UNPROCESSABLE_ENTITY, message, options, name).await;
        }
    };
    let request = CreateRequest {
        name: name.clone(),
        plan: asked.request(&model.id, source),
    };
    match state.hub().create_deployment(&viewer.caller, request).await {
        Ok(created) => {
            Redirect::to(&format!("/deployments/{}", created.deployment.id)).into_response()
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::UNAUTHORIZED => {
            refused(e.status(), e.detail().to_owned(), options, name).await
        }
        Err(e) => viewer.fail(e).into_response(),
    }
}

pub(crate) const TEXT: Table = &[
    ("deploy.title", "Deploy a model", "部署模型"),
    (
        "deploy.intro",
        "Pick a model: the hub sizes it, ranks every pool of every cloud that can run it, and deploys it on the best one your quota allows.",
        "选择一个模型：平台会自动估算所需资源，在所有云的所有资源池中排序可行方案，并部署到配额允许的最佳方案上。",
    ),
    ("deploy.params", "Parameters", "参数量"),
    ("deploy.moe", "Mixture of experts", "混合专家 (MoE)"),
    ("deploy.dense", "Dense", "稠密模型"),
    ("deploy.context", "Context", "上下文长度"),
    ("deploy.needs", "Weights", "权重大小"),
    ("deploy.needs_int4", "at 4 bits", "4 比特量化时"),
    ("deploy.choose", "Choose", "选择"),
    (
        "deploy.source",
        "A model not in the catalog",
        "目录之外的模型",
    ),
    ("deploy.source_read", "Read and plan", "读取并规划"),
    (
        "deploy.source_missing",
        "source: give a model's source, like hf://Qwen/Qwen3-8B, modelscope://Qwen/Qwen3-8B or s3://my-bucket/qwen3-8b (an object store, with a source credential)",
        "source：请填写模型来源，例如 hf://Qwen/Qwen3-8B、modelscope://Qwen/Qwen3-8B 或 s3://my-bucket/qwen3-8b（对象存储，需选择来源凭证）",
    ),
    (
        "deploy.source_hint",
        "A model on Hugging Face (hf://org/model) or ModelScope (modelscope://org/model), or in an object store (s3://bucket/prefix, oss://, obs://, cos://) read with a source credential you keep on the Source credentials page (/credentials): the hub reads its config.json and the headers of its safetensors files, never the weights, and sizes it as a catalog model.",
        "Hugging Face（hf://组织/模型）或魔搭 ModelScope（modelscope://组织/模型）上的模型，或对象存储中的模型（s3://存储桶/前缀、oss://、obs://、cos://，使用您在“来源凭证”页面（/credentials）保存的来源凭证读取）：平台只读取其 config.json 和 safetensors 文件头（不下载权重），并像目录中的模型一样估算资源。",
    ),
    (
        "deploy.source_credential_hint",
        "The source credential the hub reads the model with, and the deployment downloads its weights with: an object store's access keys (with its endpoint or region), or a gated or private model's token.",
        "平台读取模型、部署下载权重时使用的来源凭证：对象存储的访问密钥（及其端点或地域），或受限、私有模型的令牌。",
    ),
    ("deploy.plans", "Ranked plans", "方案排名"),
    (
        "deploy.plans_hint",
        "Cheapest first among pools that fit. Deploy takes the first plan your quota allows.",
        "按价格从低到高排列可行的资源池。部署时会选择配额允许的第一个方案。",
    ),
    ("deploy.rank", "Rank", "排名"),
    ("deploy.cloud", "Cloud / region", "云 / 地域"),
    ("deploy.pool", "Pool", "资源池"),
    ("deploy.accelerator", "Accelerator", "加速卡"),
    ("deploy.devices", "Devices per replica", "每副本卡数"),
    ("deploy.precision", "Precision", "精度"),
    ("deploy.parallelism", "TP × PP", "张量并行 × 流水线并行"),
    ("deploy.kv", "KV cache (tokens)", "KV 缓存 (tokens)"),
    ("deploy.concurrency", "Concurrent sequences", "并发序列数"),
    ("deploy.cost", "List cost / hour", "目录价 / 小时"),
    ("deploy.discount", "Discount", "折扣"),
    ("deploy.billed", "Your cost / hour", "您的价格 / 小时"),
    ("deploy.quota", "Quota", "配额"),
    ("deploy.quota_ok", "fits", "满足"),
    ("deploy.quota_no", "over quota", "超出配额"),
    ("deploy.capacity", "Capacity", "容量类型"),
    (
        "deploy.no_plans",
        "No pool of any cluster can run this model as asked. The reasons are below.",
        "没有任何集群的资源池能按要求运行此模型，原因见下方。",
    ),
    (
        "deploy.rejections",
        "Why other pools were passed over",
        "其他资源池未入选的原因",
    ),
    ("deploy.reason", "Reason", "原因"),
    (
        "deploy.unreachable",
        "Clusters that did not answer",
        "未响应的集群",
    ),
    ("deploy.name", "Deployment name", "部署名称"),
    (
        "deploy.name_hint",
        "Lower-case letters, digits and '-', starting with a letter; at most 40.",
        "小写字母、数字和“-”，以字母开头，最多 40 个字符。",
    ),
    ("deploy.submit", "Deploy", "部署"),
    ("deploy.advanced", "Advanced", "高级选项"),
    ("deploy.replicas", "Replicas", "副本数"),
    (
        "deploy.max_model_len",
        "Context length (tokens)",
        "上下文长度 (tokens)",
    ),
    (
        "deploy.concurrency_in",
        "Concurrent sequences per replica",
        "每副本并发序列数",
    ),
    ("deploy.precision_in", "Precision", "精度"),
    ("deploy.auto", "automatic", "自动"),
    (
        "deploy.clouds",
        "Allowed clouds (none checked: all)",
        "允许的云（不勾选表示全部）",
    ),
    (
        "deploy.regions",
        "Allowed regions, comma-separated (empty: all)",
        "允许的地域，逗号分隔（留空表示全部）",
    ),
    ("deploy.spot", "Spot capacity", "抢占式实例"),
    ("deploy.spot_default", "default (never)", "默认（不使用）"),
    ("deploy.spot_never", "never", "不使用"),
    ("deploy.spot_allowed", "allowed", "允许"),
    ("deploy.spot_preferred", "preferred", "优先"),
    (
        "deploy.replan",
        "Show plans with these options",
        "按这些选项重新规划",
    ),
    (
        "deploy.not_a_number",
        "must be a whole number",
        "必须是整数",
    ),
    (
        "deploy.bad_choice",
        "is not one of the choices",
        "不是可选值之一",
    ),
    ("deploy.back", "All models", "全部模型"),
    ("deploy.credential", "Credential", "凭证"),
    (
        "deploy.credential_none",
        "none (a public model)",
        "无（公开模型）",
    ),
    (
        "deploy.credential_hint",
        "The tenant's source credential the weights are downloaded with, for a private or gated model. Credentials are added on the Source credentials page.",
        "下载权重时使用的租户来源凭证，用于私有或受限模型。凭证可在“来源凭证”页面添加。",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_names_the_api_accepts() {
        for model in catalog() {
            let name = default_name(&model.id);
            assert!(
                modelfleet_api::placement::check_name(&name).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn repeated_checkboxes_are_all_kept() {
        let (options, _) =
            parse_options("clouds=aws&clouds=aliyun&spot=allowed&replicas=2").unwrap();
        assert_eq!(options.clouds, ["aws", "aliyun"]);
        let asked = options.asked(Lang::En).unwrap();
        assert_eq!(asked.placement.clouds, [Cloud::Aws, Cloud::Aliyun]);
        assert_eq!(asked.replicas, Some(2));
        let (bad, _) = parse_options("replicas=two").unwrap();
        assert!(bad.asked(Lang::En).unwrap_err().contains("replicas"));
    }

    #[test]
    fn cards_say_what_a_model_needs() {
        let card = ModelCard::of(ModelArch::find("llama-3.1-70b").unwrap());
        assert_eq!(card.size, "70.55B");
        assert_eq!(card.weights_gb, 142);
        assert_eq!(card.weights_int4_gb, 36);
        assert!(!card.moe);
    }
}
