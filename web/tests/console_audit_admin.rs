//! The console's audit, compliance and admin pages, as an auditor, a
//! platform admin and a tenant admin meet them: searching and paging the
//! audit trail, its chain status, a CSV that a spreadsheet cannot run,
//! exports to an object store, the MLPS report and its PDF, and the
//! platform admin's forms for tenants, users, keys, clusters and prices.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use modelfleet_api::audit::{CSV_HEADER, ExportTarget};
use modelfleet_api::store::NewTokenPrice;
use modelfleet_api::{Actor, AppState, Role};
use support::{Browser, Hub, Page, enrolled_staff, on_sqlite, tenant_with_admin, user};

/// The hub's state as `serve` gives it: a report renderer for the PDF and
/// an audit export location (`dir`).
fn full_state(hub: &Hub, dir: &std::path::Path) -> AppState {
    hub.state
        .clone()
        .with_report_renderer(Arc::new(
            modelfleet_web::compliance::HubReportRenderer::system(),
        ))
        .with_audit_target(ExportTarget::dir(dir).unwrap())
}

/// A platform admin `name`, signed in with a second factor enrolled.
async fn platform_admin(hub: &Hub, state: &AppState, name: &str, agent: Option<&str>) -> Browser {
    staff(hub, state, name, Role::PlatformAdmin, agent).await
}

/// Platform staff `name` with `role`, signed in with a second factor
/// enrolled, sending `agent` as its `User-Agent`.
async fn staff(
    hub: &Hub,
    state: &AppState,
    name: &str,
    role: Role,
    agent: Option<&str>,
) -> Browser {
    let mut browser = enrolled_staff(hub, state, name, role).await;
    browser.user_agent = agent.map(str::to_owned);
    browser
}

async fn tenant_count(hub: &Hub) -> usize {
    let reply = hub.get("/api/v1/tenants", &hub.admin).await;
    reply.body["items"].as_array().unwrap().len()
}

fn header_of<'a>(page: &'a Page, name: &str) -> &'a str {
    page.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn audit_search_finds_one_resource_pages_and_verifies_the_chain() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let dir = tempfile::tempdir().unwrap();
        let state = full_state(&hub, dir.path());
        let acme = tenant_with_admin(&hub, "acme").await;
        let mut ops = platform_admin(&hub, &state, "ops", None).await;

        let page = ops
            .post(
                "/admin/tenants",
                &[
                    ("name", "globex"),
                    ("display_name", "Globex"),
                    ("total_devices", "8"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());

        // Filtering by name finds the records of that tenant and no other.
        let page = ops.get("/audit?name=globex").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let names = page.texts("#audit-records td.name");
        assert!(!names.is_empty(), "{}", page.text());
        assert!(names.iter().all(|n| n == "globex"), "{names:?}");
        let verbs = page.texts("#audit-records td.verb");
        let resources = page.texts("#audit-records td.resource");
        assert!(
            verbs
                .iter()
                .zip(&resources)
                .any(|(v, r)| v == "create" && r == "tenants"),
            "{verbs:?} {resources:?}"
        );
        assert!(
            page.texts("#audit-records td.actor")
                .contains(&"ops".to_owned())
        );
        assert!(
            page.one("#chain-status").contains("Intact"),
            "{}",
            page.one("#chain-status")
        );
        // The filters stay in the form.
        assert_eq!(page.attrs("#name", "value"), ["globex"]);

        // Pages of two, oldest first: the next page carries on after the first.
        let page = ops.get("/audit?limit=2").await;
        let first: Vec<i64> = page
            .attrs("#audit-records tbody tr", "data-seq")
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(first.len(), 2);
        let next = page.attrs("#audit-next", "href");
        assert_eq!(next.len(), 1, "{}", page.text());
        assert!(
            next[0].contains("limit=2") && next[0].contains("cursor="),
            "{next:?}"
        );
        let page = ops.get(&next[0]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let second: Vec<i64> = page
            .attrs("#audit-records tbody tr", "data-seq")
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(second.len(), 2);
        assert!(second[0] > first[1], "{first:?} then {second:?}");

        // A filter the API refuses is shown on the form.
        let page = ops.get("/audit?from=yesterday").await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.one("#form-error").contains("from"), "{}", page.text());
        let page = ops
            .get("/audit?from=2026-11-29T10:00&to=2026-11-29T09:00")
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.one("#form-error").contains("to"));

        // A tenant admin sees their tenant's records only, and neither the
        // chain (which spans every tenant) nor the exports.
        let mut admin = Browser::for_state(&state);
        admin.sign_in("acme-admin").await;
        let page = admin.get("/audit").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let tenants = page.texts("#audit-records td.tenant");
        assert!(!tenants.is_empty(), "{}", page.text());
        assert!(
            tenants.iter().all(|t| *t == acme.to_string()),
            "{tenants:?}"
        );
        assert!(
            !page
                .texts("#audit-records td.name")
                .contains(&"globex".to_owned())
        );
        assert!(!page.one("#chain-status").contains("Intact"));
        assert!(!page.has("#audit-export-form"));
        assert!(
            !page.has("#tenant"),
            "no tenant filter for a tenant's admin"
        );
        let page = admin.get("/audit?name=globex").await;
        assert!(!page.has("#audit-records"), "{}", page.text());

        // A platform-wide auditor reads every tenant's records and the
        // chain, and is no admin.
        let mut auditor = staff(&hub, &state, "audrey", Role::Auditor, None).await;
        let page = auditor.get("/audit?name=globex").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(
            page.texts("#audit-records td.name")
                .contains(&"globex".to_owned())
        );
        assert!(page.one("#chain-status").contains("Intact"));
        assert!(page.has("#tenant"));
        let page = auditor.get("/compliance").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = auditor.get("/admin/tenants").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);

        // A developer may not read the trail at all: the API's 403.
        user(&hub, Some(acme), "dev", Role::Developer).await;
        let mut dev = Browser::for_state(&state);
        dev.sign_in("dev").await;
        let page = dev.get("/audit").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        assert!(page.has("#error-message"));
    })
    .await;
}

#[tokio::test]
async fn the_csv_download_is_an_attachment_with_formulas_made_inert() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let dir = tempfile::tempdir().unwrap();
        let state = full_state(&hub, dir.path());
        // What a caller sends as its user agent is recorded as it is.
        let hostile = "=HYPERLINK(\"http://evil.example\",\"x\")";
        let mut ops = platform_admin(&hub, &state, "ops", Some(hostile)).await;
        for name in ["acme", "globex"] {
            let page = ops.post("/admin/tenants", &[("name", name)]).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        }

        let page = ops.get("/audit?resource=tenants").await;
        let link = page.attrs("#audit-csv", "href");
        assert_eq!(link, ["/audit/records.csv?resource=tenants"]);
        let csv = ops.get(&link[0]).await;
        assert_eq!(csv.status, StatusCode::OK, "{}", csv.text());
        assert!(header_of(&csv, "content-type").starts_with("text/csv"));
        let disposition = header_of(&csv, "content-disposition");
        assert!(
            disposition.starts_with("attachment; filename=\"audit-"),
            "{disposition}"
        );
        assert!(disposition.ends_with(".csv\""), "{disposition}");
        let text = csv.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        // One line per tenant created, each naming it.
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].contains(",tenants,") && lines[1].contains(",acme,"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains(",globex,"), "{}", lines[2]);
        // The formula is text: a leading apostrophe, quotes doubled.
        assert!(
            text.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\","),
            "{text}"
        );
        assert!(
            !text.contains(",=HYPERLINK") && !text.contains(",\"=HYPERLINK"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_export_through_the_form_writes_files_and_is_listed() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let dir = tempfile::tempdir().unwrap();
        let state = full_state(&hub, dir.path());
        tenant_with_admin(&hub, "acme").await;
        let mut ops = platform_admin(&hub, &state, "ops", None).await;
        let page = ops.get("/audit").await;
        assert!(page.has("#exports-none"), "{}", page.text());

        let page = ops
            .post("/audit/exports", &[("from", ""), ("to", "")])
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "{}", page.text());
        let keys = page.texts("#export-files tbody td:first-child");
        assert_eq!(keys.len(), 2, "{}", page.text());
        assert!(keys.iter().any(|k| k.ends_with(".jsonl")), "{keys:?}");
        assert!(keys.iter().any(|k| k.ends_with(".csv")), "{keys:?}");
        let records: u64 = page.one("#export-records").parse().unwrap();
        assert!(records > 0);
        for key in &keys {
            assert!(dir.path().join(key).is_file(), "{key} not written");
        }

        let page = ops.get("/audit").await;
        assert_eq!(
            page.texts("#audit-exports tbody tr").len(),
            1,
            "{}",
            page.text()
        );

        // A bad time is refused and nothing more is exported.
        let page = ops
            .post("/audit/exports", &[("from", "soon"), ("to", "")])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.one("#form-error").contains("from"));
        let page = ops.get("/audit").await;
        assert_eq!(page.texts("#audit-exports tbody tr").len(), 1);

        // A tenant admin may not export: the API's 403.
        let mut admin = Browser::for_state(&state);
        admin.sign_in("acme-admin").await;
        let page = admin.post("/audit/exports", &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
    })
    .await;
}

#[tokio::test]
async fn the_compliance_report_lists_items_and_downloads_as_pdf() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let dir = tempfile::tempdir().unwrap();
        let state = full_state(&hub, dir.path());
        let mut ops = platform_admin(&hub, &state, "ops", None).await;

        let page = ops.get("/compliance").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let statuses = page.attrs("#compliance-items tbody tr", "data-status");
        assert!(statuses.len() > 5, "{statuses:?}");
        let count = |s: &str| statuses.iter().filter(|x| *x == s).count();
        assert!(count("pass") > 0 && count("fail") > 0, "{statuses:?}");
        assert_eq!(page.one("#compliance-passed"), count("pass").to_string());
        assert_eq!(page.one("#compliance-failed"), count("fail").to_string());
        assert_eq!(
            page.one("#compliance-manual"),
            count("needs-manual-evidence").to_string()
        );
        let shown = page.texts("#compliance-items td.status");
        assert!(shown.contains(&"Pass".to_owned()) && shown.contains(&"Fail".to_owned()));

        let link = page.attrs("#compliance-pdf", "href");
        assert_eq!(link, ["/compliance/report.pdf"]);
        let pdf = ops.get(&link[0]).await;
        assert_eq!(pdf.status, StatusCode::OK, "{}", pdf.text());
        assert_eq!(header_of(&pdf, "content-type"), "application/pdf");
        assert!(header_of(&pdf, "content-disposition").starts_with("attachment"));
        assert!(pdf.body.starts_with(b"%PDF-"));

        // In Chinese, the statuses are Chinese.
        ops.get("/language/zh").await;
        let page = ops.get("/compliance").await;
        assert!(
            page.texts("#compliance-items td.status")
                .contains(&"通过".to_owned())
        );

        // Without a renderer, the handler's reason is shown.
        let mut plain = platform_admin(&hub, &hub.state, "ops2", None).await;
        let page = plain.get("/compliance/report.pdf").await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            page.one("#error-message").contains("format=json"),
            "{}",
            page.text()
        );
    })
    .await;
}

#[tokio::test]
async fn admin_pages_refuse_everyone_but_platform_admins() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut admin = Browser::for_state(&hub.state);
        admin.sign_in("acme-admin").await;
        for path in [
            "/admin",
            "/admin/tenants",
            "/admin/users",
            "/admin/keys",
            "/admin/clusters",
            "/admin/prices",
        ] {
            let page = admin.get(path).await;
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{path}: {}",
                page.text()
            );
            assert!(
                page.one("#error-message").contains("platform admins"),
                "{path}"
            );
        }
        let before = tenant_count(&hub).await;
        let page = admin.post("/admin/tenants", &[("name", "sneaky")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert_eq!(tenant_count(&hub).await, before);
    })
    .await;
}

#[tokio::test]
async fn a_platform_admin_manages_tenants_and_quotas_through_the_forms() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let mut ops = platform_admin(&hub, &hub.state, "ops", None).await;
        let page = ops.get("/admin").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.attrs("#admin-links a", "href")
                .contains(&"/admin/tenants".to_owned())
        );

        let hostile = "<img src=x onerror=alert(1)>";
        let page = ops
            .post(
                "/admin/tenants",
                &[
                    ("name", "initech"),
                    ("display_name", hostile),
                    ("total_devices", "8"),
                    ("deployments", "2"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(page.location(), Some("/admin/tenants"));

        let page = ops.get("/admin/tenants").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.texts("#tenants td.name")
                .contains(&"initech".to_owned())
        );
        // Shown as text, never as markup.
        assert_eq!(page.texts("#tenants td.display-name"), [hostile]);
        // askama writes `<` and `>` as numeric references.
        assert!(page.text().contains("&#60;img src=x onerror=alert(1)&#62;"));
        assert!(!page.has("img"), "no image element was made");
        assert!(!page.text().contains("<img src=x"));
        let id = page.attrs("#tenants tbody tr", "data-tenant")[0].clone();
        assert_eq!(page.attrs(&format!("#devices-{id}"), "value"), ["8"]);
        assert_eq!(page.attrs(&format!("#deployments-{id}"), "value"), ["2"]);

        // Refused: a name that is no DNS label, and a name taken. Nothing
        // is created, and the form keeps what was typed.
        let before = tenant_count(&hub).await;
        let page = ops
            .post(
                "/admin/tenants",
                &[("name", "Not A Name!"), ("display_name", "Bad")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(!page.one("#form-error").is_empty());
        assert_eq!(page.attrs("#tenant-name", "value"), ["Not A Name!"]);
        let page = ops.post("/admin/tenants", &[("name", "initech")]).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.text());
        let page = ops
            .post(
                "/admin/tenants",
                &[("name", "hooli"), ("total_devices", "many")],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(
            page.one("#form-error").contains("totalDevices"),
            "{}",
            page.text()
        );
        assert_eq!(tenant_count(&hub).await, before);

        // The quota form changes the two limits and keeps the rest.
        let quota = format!("/admin/tenants/{id}/quota");
        let page = ops
            .post(&quota, &[("total_devices", "16"), ("deployments", "")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let reply = hub
            .get(&format!("/api/v1/tenants/{id}/quota"), &hub.admin)
            .await;
        assert_eq!(reply.body["limits"]["totalDevices"], 16);
        assert!(
            reply.body["limits"]["deployments"].is_null(),
            "{:#}",
            reply.body
        );
        let page = ops
            .post(&quota, &[("total_devices", "-3"), ("deployments", "1")])
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(page.has("#form-error"));
        let reply = hub
            .get(&format!("/api/v1/tenants/{id}/quota"), &hub.admin)
            .await;
        assert_eq!(reply.body["limits"]["totalDevices"], 16);
        assert!(reply.body["limits"]["deployments"].is_null());
    })
    .await;
}

#[tokio::test]
async fn users_and_api_keys_are_created_and_a_token_is_shown_once() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await.to_string();
        let mut ops = platform_admin(&hub, &hub.state, "ops", None).await;

        let page = ops
            .post(
                "/admin/users",
                &[
                    ("tenant", &acme),
                    ("username", "dana"),
                    ("display_name", "Dana <b>Scully</b>"),
                    ("role", "developer"),
                    ("password", "Strong-password-42!"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = ops.get("/admin/users").await;
        let names = page.texts("#users td.username");
        assert!(names.contains(&"dana".to_owned()) && names.contains(&"ops".to_owned()));
        assert!(
            page.texts("#users td.display-name")
                .contains(&"Dana <b>Scully</b>".to_owned())
        );
        // A weak password is refused with the API's reason; no user.
        let page = ops
            .post(
                "/admin/users",
                &[
                    ("tenant", &acme),
                    ("username", "weak"),
                    ("role", "viewer"),
                    ("password", "short"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(page.one("#form-error").contains("password"));
        assert_eq!(page.attrs("#user-username", "value"), ["weak"]);
        assert!(
            page.attrs("#user-password", "value")
                .iter()
                .all(String::is_empty)
        );
        let page = ops.get("/admin/users").await;
        assert!(
            !page
                .texts("#users td.username")
                .contains(&"weak".to_owned())
        );

        // A key: its token once, on the result page only.
        let page = ops
            .post(
                "/admin/keys",
                &[("tenant", &acme), ("name", "ci-bot"), ("role", "developer")],
            )
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "{}", page.text());
        let token = page.attrs("#new-key", "value")[0].clone();
        assert!(token.starts_with("mf_"), "{token}");
        assert_eq!(
            hub.get("/api/v1/prices", &token).await.status,
            StatusCode::OK
        );
        let page = ops.get("/admin/keys").await;
        let names = page.texts("#keys td.name");
        assert!(names.contains(&"ci-bot".to_owned()), "{names:?}");
        assert!(!page.text().contains(&token));
        assert!(!page.has("#new-key"));

        // Revoked from its row: the token stops working.
        let ids = page.attrs("#keys tbody tr", "data-key");
        let row = names.iter().position(|n| n == "ci-bot").unwrap();
        let page = ops
            .post(&format!("/admin/keys/{}/revoke", ids[row]), &[])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(
            hub.get("/api/v1/prices", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        let page = ops.get("/admin/keys").await;
        assert_eq!(page.texts("#keys .revoked").len(), 1);

        // No tenant named: refused, nothing created.
        let before = page.texts("#keys tbody tr").len();
        let page = ops
            .post(
                "/admin/keys",
                &[("tenant", ""), ("name", "orphan"), ("role", "viewer")],
            )
            .await;
        assert!(page.status.is_client_error(), "{}", page.text());
        assert!(page.has("#form-error"));
        let page = ops.get("/admin/keys").await;
        assert_eq!(page.texts("#keys tbody tr").len(), before);
    })
    .await;
}

#[tokio::test]
async fn clusters_show_their_pools_and_prices_can_be_added() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let mut ops = platform_admin(&hub, &hub.state, "ops", None).await;

        let page = ops.get("/admin/clusters").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(page.attrs("section.cloud-group", "data-cloud"), ["aws"]);
        let cluster = "#cluster-aws-use1-prod";
        assert_eq!(page.one(&format!("{cluster} .region")), "us-east-1");
        assert!(
            page.one(&format!("{cluster} .status"))
                .contains("Reachable")
        );
        let pools = page.texts(&format!("{cluster} td.pool-name"));
        assert_eq!(pools.len(), 4, "{pools:?}");
        assert!(pools.iter().any(|p| p.contains("p5-h100")), "{pools:?}");
        let h100 = pools.iter().position(|p| p.contains("p5-h100")).unwrap();
        assert_eq!(
            page.texts(&format!("{cluster} td.accelerator"))[h100],
            "h100-80gb"
        );
        // 3 of 4 nodes free, 8 devices each.
        assert_eq!(page.texts(&format!("{cluster} td.nodes"))[h100], "3 / 4");
        assert_eq!(
            page.texts(&format!("{cluster} td.devices"))[h100],
            "24 / 32"
        );

        // A kubeconfig that reaches nothing is refused; nothing registered.
        let page = ops
            .post(
                "/admin/clusters",
                &[
                    ("name", "ali-hz"),
                    ("cloud", "aliyun"),
                    ("region", "cn-hangzhou"),
                    ("kubeconfig", "not: [a kubeconfig"),
                ],
            )
            .await;
        assert!(page.status.is_client_error(), "{}", page.text());
        assert!(page.has("#form-error"));
        assert!(
            !page.text().contains("not: [a kubeconfig"),
            "a kubeconfig is never sent back"
        );
        let page = ops.get("/admin/clusters").await;
        assert!(!page.has("#cluster-ali-hz"));

        let page = ops
            .post(
                "/admin/prices",
                &[
                    ("cloud", "aws"),
                    ("region", "us-east-1"),
                    ("accelerator", "h100-80gb"),
                    ("capacity", "spot"),
                    ("price", "3.25"),
                    ("currency", "USD"),
                    ("effective_from", ""),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = ops.get("/admin/prices").await;
        let prices = page.texts("#prices td.price");
        assert!(
            prices
                .iter()
                .any(|p| p.starts_with("3.25") && p.ends_with("USD")),
            "{prices:?}"
        );
        let rows = prices.len();
        let page = ops
            .post(
                "/admin/prices",
                &[
                    ("cloud", "aws"),
                    ("region", "us-east-1"),
                    ("accelerator", "h100-80gb"),
                    ("capacity", "spot"),
                    ("price", "cheap"),
                    ("currency", "USD"),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(page.has("#form-error"));
        assert_eq!(page.texts("#prices td.price").len(), rows);

        // Token prices (set through the API) are listed beside them.
        assert!(page.has("#no-token-prices"));
        let mut tx = hub.store.begin(&Actor::system("test")).await.unwrap();
        tx.set_token_price(&NewTokenPrice {
            model: "llama-3.1-8b".to_owned(),
            per_million_input: "0.50 USD".parse().unwrap(),
            per_million_output: "1.50 USD".parse().unwrap(),
            effective_from: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let page = ops.get("/admin/prices").await;
        assert_eq!(page.texts("#token-prices td.model"), ["llama-3.1-8b"]);
        assert_eq!(page.texts("#token-prices td.input-price"), ["0.50 USD"]);
        assert_eq!(page.texts("#token-prices td.output-price"), ["1.50 USD"]);
    })
    .await;
}
