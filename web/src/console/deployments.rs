//! A tenant's deployments: the list, and one deployment's page with its
//! phase as a progress line, the plan it runs on, its conditions and
//! endpoint as its cluster last reported them (kept by cluster sync: a
//! page never calls the cluster), its events and its cost so far.
//! While it is changing, the live part of the page polls
//! `/deployments/{id}/live` every two seconds (htmx) and stops once it has
//! settled. Scaling and deleting ask for confirmation first.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use modelfleet_api::AppState;
use modelfleet_api::http::page::{PageParams, paginate};
use modelfleet_api::http::v1::deployments::DeploymentView;
use modelfleet_api::ids::DeploymentId;
use modelfleet_api::service::{DeploymentRef, ListRequest};
use modelfleet_api::store::Deployment;
use modelfleet_core::crd::{Phase, WeightsFrom};
use serde::Deserialize;

use super::deployment_traffic::{TrafficView, traffic_of};
use super::i18n::{Lang, Table};
use super::page::{Chrome, PageError, Viewer};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deployments", get(list))
        .route("/deployments/{id}", get(detail))
        .route("/deployments/{id}/live", get(live))
        .route("/deployments/{id}/logs", get(super::deployment_logs::logs))
        .route("/deployments/{id}/try", post(super::try_it::try_it))
        .route(
            "/deployments/{id}/traffic",
            get(super::deployment_traffic::traffic),
        )
        .route("/deployments/{id}/scale", get(scale_confirm).post(scale))
        .route("/deployments/{id}/delete", get(delete_confirm).post(delete))
}

/// The steps of the progress line, in order.
const STEPS: [Phase; 4] = [
    Phase::Planning,
    Phase::Scheduling,
    Phase::Loading,
    Phase::Ready,
];

/// One step of the progress line: `done`, `current`, `failed` or `todo`.
#[derive(Debug)]
pub struct Step {
    pub name: &'static str,
    pub state: &'static str,
}

/// Where a phase sits on the progress line.
pub fn progress(phase: Phase) -> Vec<Step> {
    let at = match phase {
        Phase::Pending | Phase::Planning => Some(0),
        Phase::Scheduling => Some(1),
        Phase::Loading => Some(2),
        Phase::Ready | Phase::Degraded => Some(3),
        Phase::Failed | Phase::Terminating | Phase::Deleting => None,
    };
    STEPS
        .iter()
        .enumerate()
        .map(|(i, step)| Step {
            name: step.as_str(),
            state: match at {
                _ if phase == Phase::Failed && i == 0 => "failed",
                Some(at) if i < at => "done",
                Some(at) if i == at && phase == Phase::Ready => "done",
                Some(at) if i == at => "current",
                _ => "todo",
            },
        })
        .collect()
}

/// Whether a deployment still changes by itself (the page keeps polling).
pub fn changing(d: &Deployment) -> bool {
    d.deleted_at.is_none()
        && !(d.phase == Phase::Ready && d.ready_replicas == d.replicas)
        && d.phase != Phase::Failed
        && !(d.replicas == 0 && d.ready_replicas == 0 && d.phase != Phase::Pending)
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deployments/list.html")]
struct ListPage {
    c: Chrome,
    items: Vec<DeploymentView>,
    include_deleted: bool,
    next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    deleted: bool,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<ListPage, PageError> {
    let deployments = state
        .hub()
        .deployments(
            &viewer.caller,
            &ListRequest {
                tenant: None,
                include_deleted: query.deleted,
            },
        )
        .await
        .map_err(|e| viewer.fail(e))?;
    let page = PageParams {
        limit: Some(50),
        cursor: query.cursor.clone(),
    };
    let key = |d: &Deployment| format!("{}/{}/{}", d.tenant, d.name, d.id);
    let (items, next_cursor) = paginate(deployments, key, &page).map_err(|e| viewer.fail(e))?;
    Ok(ListPage {
        c: viewer.chrome("deployments", TEXT),
        items: items.into_iter().map(DeploymentView::from).collect(),
        include_deleted: query.deleted,
        next_cursor,
    })
}

/// A condition as the cluster reports it.
#[derive(Debug)]
pub struct ConditionRow {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: String,
}

/// Everything the live part of the page shows.
#[derive(Debug)]
pub struct Live {
    pub d: DeploymentView,
    pub steps: Vec<Step>,
    pub polling: bool,
    pub conditions: Vec<ConditionRow>,
    pub endpoint: Option<String>,
    /// Where each started replica's weights came from.
    pub weights: Vec<WeightsRow>,
    /// Why the cluster could not be asked, when it could not.
    pub cluster_note: Option<String>,
    pub events: Vec<EventRow>,
    /// Billed cost since it was created, per currency.
    pub cost_so_far: Vec<String>,
    pub device_hours: Vec<String>,
}

/// One replica's weights: its pod, where they came from (a text key), and
/// their size.
#[derive(Debug)]
pub struct WeightsRow {
    pub pod: String,
    pub from: &'static str,
    pub size: String,
}

#[derive(Debug)]
pub struct EventRow {
    pub at: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub(super) fn parse_id(lang: Lang, id: &str) -> Result<DeploymentId, PageError> {
    id.parse().map_err(|_| {
        PageError::new(
            lang,
            StatusCode::NOT_FOUND,
            lang.t(TEXT, "deployments.not_found"),
        )
    })
}

async fn live_of(state: &AppState, viewer: &Viewer, id: DeploymentId) -> Result<Live, PageError> {
    Ok(live_and_deployment(state, viewer, id).await?.0)
}

/// [`live_of`], and the deployment it shows.
async fn live_and_deployment(
    state: &AppState,
    viewer: &Viewer,
    id: DeploymentId,
) -> Result<(Live, Deployment), PageError> {
    let hub = state.hub();
    let detail = hub
        .deployment_detail(&viewer.caller, &DeploymentRef::Id(id))
        .await
        .map_err(|e| viewer.fail(e))?;
    let d = detail.deployment;
    // What its cluster last reported; nothing once it is deleted.
    let (conditions, endpoint) = if d.deleted_at.is_some() {
        (Vec::new(), None)
    } else {
        let conditions = d
            .conditions
            .iter()
            .map(|c| ConditionRow {
                kind: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                since: c.since.clone(),
            })
            .collect();
        (conditions, d.endpoint.clone())
    };
    let events = detail
        .events
        .into_iter()
        .rev()
        .take(20)
        .map(|e| EventRow {
            at: when(e.at),
            kind: e.kind.name().to_owned(),
            from: join_pool(e.from_cluster, e.from_pool),
            to: join_pool(e.to_cluster, e.to_pool),
            reason: e.reason,
        })
        .collect();
    let (cost_so_far, device_hours) = match hub.deployment_usage(&viewer.caller, &d).await {
        Ok(Some(report)) => (
            report.groups.iter().map(|g| g.cost.to_string()).collect(),
            report
                .groups
                .iter()
                .map(|g| g.device_hours.clone())
                .collect(),
        ),
        // A role that may not read usage sees the page without it.
        Ok(None) | Err(_) => (Vec::new(), Vec::new()),
    };
    let weights = d
        .weights
        .iter()
        .map(|w| WeightsRow {
            pod: w.pod.clone(),
            from: match w.from {
                WeightsFrom::Download => "deployments.weights_download",
                WeightsFrom::NodeCache => "deployments.weights_node_cache",
                WeightsFrom::PodVolume => "deployments.weights_pod_volume",
            },
            size: format!("{:.2} GiB", w.bytes as f64 / f64::from(1u32 << 30)),
        })
        .collect();
    let live = Live {
        steps: progress(d.phase),
        weights,
        polling: changing(&d),
        d: d.clone().into(),
        conditions,
        endpoint,
        cluster_note: None,
        events,
        cost_so_far,
        device_hours,
    };
    Ok((live, d))
}

fn join_pool(cluster: Option<String>, pool: Option<String>) -> String {
    match (cluster, pool) {
        (Some(c), Some(p)) => format!("{c}/{p}"),
        (Some(c), None) => c,
        _ => String::new(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deployments/detail.html")]
struct DetailPage {
    c: Chrome,
    live: Live,
    can_change: bool,
    /// Offered the "Try it" box (`try_it`).
    can_try: bool,
    max_message_chars: usize,
    traffic: TrafficView,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deployments/live.html")]
struct LiveFragment {
    c: Chrome,
    live: Live,
}

async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<DetailPage, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    let (live, d) = live_and_deployment(&state, &viewer, id).await?;
    Ok(DetailPage {
        traffic: traffic_of(&state, &viewer, &d).await,
        c: viewer.chrome("deployments", TEXT),
        can_change: viewer.can(modelfleet_api::identity::Permission::Deploy)
            && live.d.deleted_at.is_none(),
        can_try: super::try_it::may_try(&viewer) && live.d.deleted_at.is_none(),
        max_message_chars: super::try_it::MAX_MESSAGE_CHARS,
        live,
    })
}

/// The live part alone, for htmx to swap in.
async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<LiveFragment, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    Ok(LiveFragment {
        c: viewer.chrome("deployments", TEXT),
        live: live_of(&state, &viewer, id).await?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/deployments/confirm.html")]
struct ConfirmPage {
    c: Chrome,
    d: DeploymentView,
    /// `scale` or `delete`.
    action: &'static str,
    replicas: u32,
    /// Hourly cost after the change, when it can be said.
    cost_after: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ScaleForm {
    replicas: String,
}

async fn scale_confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(form): Query<ScaleForm>,
) -> Result<Response, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    let d: DeploymentView = state
        .hub()
        .deployment(&viewer.caller, &DeploymentRef::Id(id))
        .await
        .map_err(|e| viewer.fail(e))?
        .into();
    let (replicas, error) = match form.replicas.trim().parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => (
            d.replicas,
            Some(format!(
                "{} ({:?})",
                viewer.lang.t(TEXT, "deployments.bad_replicas"),
                form.replicas
            )),
        ),
    };
    let cost_after = d
        .replica_cost_per_hour
        .checked_mul(u64::from(replicas))
        .map(|m| m.to_string());
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ConfirmPage {
        c: viewer.chrome("deployments", TEXT),
        d,
        action: "scale",
        replicas,
        cost_after,
        error,
    };
    Ok((status, page).into_response())
}

async fn scale(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ScaleForm>,
) -> Result<Response, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    let Ok(replicas) = form.replicas.trim().parse::<u32>() else {
        return Err(PageError::new(
            viewer.lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} ({:?})",
                viewer.lang.t(TEXT, "deployments.bad_replicas"),
                form.replicas
            ),
        ));
    };
    state
        .hub()
        .scale_deployment(&viewer.caller, &DeploymentRef::Id(id), replicas)
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(Redirect::to(&format!("/deployments/{id}")).into_response())
}

async fn delete_confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<ConfirmPage, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    let d: DeploymentView = state
        .hub()
        .deployment(&viewer.caller, &DeploymentRef::Id(id))
        .await
        .map_err(|e| viewer.fail(e))?
        .into();
    Ok(ConfirmPage {
        c: viewer.chrome("deployments", TEXT),
        replicas: d.replicas,
        d,
        action: "delete",
        cost_after: None,
        error: None,
    })
}

async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(viewer.lang, &id)?;
    state
        .hub()
        .delete_deployment(&viewer.caller, &DeploymentRef::Id(id))
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(Redirect::to("/deployments").into_response())
}

pub(crate) const TEXT: Table = &[
    ("deployments.title", "Deployments", "部署列表"),
    ("deployments.none", "No deployments yet.", "还没有部署。"),
    ("deployments.deploy_one", "Deploy a model", "部署一个模型"),
    ("deployments.show_deleted", "Show deleted", "显示已删除"),
    ("deployments.hide_deleted", "Hide deleted", "隐藏已删除"),
    ("deployments.name", "Name", "名称"),
    ("deployments.model", "Model", "模型"),
    ("deployments.phase", "Phase", "状态"),
    (
        "deployments.replicas",
        "Replicas (ready / wanted)",
        "副本（就绪 / 期望）",
    ),
    ("deployments.where", "Cluster / pool", "集群 / 资源池"),
    ("deployments.accelerator", "Accelerator", "加速卡"),
    ("deployments.cost", "Cost / hour", "每小时费用"),
    ("deployments.created", "Created", "创建时间"),
    ("deployments.deleted", "Deleted", "已删除"),
    (
        "deployments.not_found",
        "There is no such deployment.",
        "没有这个部署。",
    ),
    ("deployments.progress", "Progress", "进度"),
    ("deployments.step.Planning", "Planning", "规划"),
    ("deployments.step.Scheduling", "Scheduling", "调度"),
    ("deployments.step.Loading", "Loading", "加载"),
    ("deployments.step.Ready", "Ready", "就绪"),
    (
        "deployments.refreshing",
        "This page refreshes itself while the deployment changes.",
        "部署变化期间本页会自动刷新。",
    ),
    ("deployments.status", "Status", "状态说明"),
    ("deployments.plan", "Plan", "部署方案"),
    ("deployments.precision", "Precision", "精度"),
    ("deployments.devices", "Devices per replica", "每副本卡数"),
    (
        "deployments.replica_cost",
        "Cost per replica-hour",
        "每副本每小时费用",
    ),
    ("deployments.source", "Created through", "创建方式"),
    (
        "deployments.endpoint",
        "Endpoint (OpenAI-compatible, inside its cluster)",
        "服务地址（OpenAI 兼容，集群内）",
    ),
    ("deployments.no_endpoint", "Not answering yet", "尚未就绪"),
    ("deployments.weights", "Weights", "模型权重"),
    ("deployments.pod", "Pod", "Pod"),
    ("deployments.weights_from", "From", "来源"),
    ("deployments.size", "Size", "大小"),
    (
        "deployments.weights_download",
        "downloaded from the source",
        "从来源下载",
    ),
    (
        "deployments.weights_node_cache",
        "the node's model cache",
        "节点模型缓存",
    ),
    (
        "deployments.weights_pod_volume",
        "the pod's own volume (fetched before it restarted)",
        "Pod 自身存储卷（重启前已下载）",
    ),
    ("deployments.conditions", "Conditions", "状况"),
    ("deployments.condition", "Condition", "状况"),
    ("deployments.reason", "Reason", "原因"),
    ("deployments.message", "Message", "信息"),
    ("deployments.since", "Since", "开始时间"),
    (
        "deployments.cluster_unreachable",
        "Its cluster did not answer",
        "所在集群未响应",
    ),
    ("deployments.events", "Recent events", "最近事件"),
    ("deployments.no_events", "No events.", "没有事件。"),
    (
        "deployments.replica_logs",
        "Replicas' last lines",
        "各副本最近输出",
    ),
    ("deployments.no_replicas", "No pods yet.", "还没有 Pod。"),
    (
        "deployments.logs_unreadable",
        "The logs cannot be read now",
        "暂时无法读取日志",
    ),
    ("deployments.on_node", "on", "所在节点"),
    (
        "deployments.logs_hint",
        "Read from the cluster when this page loads; reload for newer lines.",
        "本页加载时从集群读取；刷新可看最新输出。",
    ),
    ("deployments.back", "Back to the deployment", "返回部署"),
    (
        "deployments.no_output",
        "Nothing printed yet.",
        "尚无输出。",
    ),
    ("deployments.event", "Event", "事件"),
    ("deployments.from", "From", "从"),
    ("deployments.to", "To", "到"),
    ("deployments.cost_so_far", "Cost so far", "累计费用"),
    ("deployments.device_hours", "device-hours", "卡时"),
    (
        "deployments.no_cost",
        "Nothing billed yet.",
        "尚未产生费用。",
    ),
    ("deployments.scale", "Scale", "扩缩容"),
    ("deployments.scale_to", "Replicas", "副本数"),
    ("deployments.delete", "Delete", "删除"),
    (
        "deployments.confirm_scale",
        "Scale this deployment?",
        "确认扩缩容此部署？",
    ),
    (
        "deployments.confirm_scale_text",
        "The number of replicas changes from",
        "副本数将从",
    ),
    ("deployments.confirm_to", "to", "变为"),
    (
        "deployments.cost_after",
        "Cost per hour afterwards",
        "变更后每小时费用",
    ),
    (
        "deployments.confirm_delete",
        "Delete this deployment?",
        "确认删除此部署？",
    ),
    (
        "deployments.confirm_delete_text",
        "Its replicas stop and its quota is freed. This cannot be undone.",
        "其所有副本将停止，配额随即释放。此操作无法撤销。",
    ),
    (
        "deployments.bad_replicas",
        "Replicas must be a whole number, 0 or more",
        "副本数必须是大于或等于 0 的整数",
    ),
    ("traffic.title", "Traffic", "流量"),
    ("traffic.window", "Over the last", "统计范围：最近"),
    ("traffic.minutes", "minutes", "分钟"),
    ("traffic.requests", "Requests", "请求"),
    ("traffic.requests_count", "requests", "个请求"),
    ("traffic.errors", "errors", "个错误"),
    ("traffic.input", "Input tokens", "输入 token"),
    ("traffic.output", "Output tokens", "输出 token"),
    ("traffic.tokens", "tokens", "个 token"),
    (
        "traffic.ttft",
        "Time to first token (p50 / p90 / p99)",
        "首 token 延迟（p50 / p90 / p99）",
    ),
    (
        "traffic.tpot",
        "Time per output token (p50 / p90 / p99)",
        "每输出 token 耗时（p50 / p90 / p99）",
    ),
    ("traffic.answers", "streamed answers", "个流式回答"),
    ("traffic.no_streams", "No streamed answers", "没有流式回答"),
    (
        "traffic.cost",
        "Cost per million tokens",
        "每百万 token 费用",
    ),
    ("traffic.per_input", "per 1M input", "每百万输入"),
    ("traffic.per_output", "per 1M output", "每百万输出"),
    (
        "traffic.by_tokens",
        "billed by tokens at the price list's prices",
        "按 token 计费，价目表价格",
    ),
    ("traffic.per_million", "per 1M tokens", "每百万 token"),
    (
        "traffic.by_time",
        "billed by device time; the window's device cost",
        "按卡时计费；本时段卡时费用",
    ),
    ("traffic.no_traffic", "No traffic", "无流量"),
    (
        "traffic.nothing_billed",
        "Nothing billed in the window",
        "本时段未产生费用",
    ),
    (
        "traffic.unpriced",
        "Billed by device time, which cannot be priced yet:",
        "按卡时计费，但尚无法定价：",
    ),
    (
        "traffic.unavailable",
        "The figures cannot be read now.",
        "暂时无法读取统计数据。",
    ),
    (
        "traffic.not_allowed",
        "Your role may not read usage.",
        "您的角色无权查看用量。",
    ),
    ("try.title", "Try it", "试用"),
    (
        "try.billed",
        "Your message goes to this deployment through the inference gateway, as you: it is metered and billed like any other call to the model.",
        "消息以您的身份经推理网关发送到此部署：与其他模型调用一样计量和计费。",
    ),
    ("try.message", "Message", "消息"),
    ("try.send", "Send", "发送"),
    ("try.sending", "Waiting for the answer…", "等待回答…"),
    ("try.answer", "Answer", "回答"),
    (
        "try.empty",
        "Write a message first: an empty message is not sent.",
        "请先输入消息：空消息不会发送。",
    ),
    (
        "try.too_long",
        "The message is too long; shorten it. Characters used / allowed:",
        "消息过长，请缩短。已用 / 允许的字符数：",
    ),
    (
        "try.forbidden",
        "Your role may not call models; a tenant admin or developer may.",
        "您的角色无权调用模型；租户管理员或开发者可以。",
    ),
    (
        "try.deleted",
        "This deployment is deleted; it answers nothing.",
        "此部署已删除，不再应答。",
    ),
    (
        "try.signed_out",
        "You are signed out; sign in again.",
        "您已退出登录，请重新登录。",
    ),
    (
        "try.refused",
        "The console refused this. Reload the page and try again.",
        "控制台拒绝了此请求。请刷新页面后重试。",
    ),
    (
        "try.failed",
        "The answer broke off before it was complete.",
        "回答在完成前中断。",
    ),
    ("try.usage_in", "tokens in", "输入 token"),
    ("try.usage_out", "tokens out", "输出 token"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn states(phase: &str) -> Vec<&'static str> {
        progress(Phase::parse(phase).unwrap())
            .iter()
            .map(|s| s.state)
            .collect()
    }

    #[test]
    fn the_progress_line_follows_the_phase() {
        assert_eq!(states("Pending"), ["current", "todo", "todo", "todo"]);
        assert_eq!(states("Scheduling"), ["done", "current", "todo", "todo"]);
        assert_eq!(states("Loading"), ["done", "done", "current", "todo"]);
        assert_eq!(states("Ready"), ["done", "done", "done", "done"]);
        assert_eq!(states("Degraded"), ["done", "done", "done", "current"]);
        assert_eq!(states("Failed"), ["failed", "todo", "todo", "todo"]);
    }
}
