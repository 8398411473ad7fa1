//! A model in a tenant's object store, deployed from the console's deploy
//! page: the source form offers the tenant's source credentials (none of
//! another tenant's; platform staff see the tenant they act for), reads
//! an `s3://` model on an S3 server on loopback (`tests/support/s3.rs`,
//! shared with the api and end-to-end tests) with the one chosen, plans
//! it with the choice riding along, and deploys it fetching with it.
//! Without a credential, or with one that cannot read the store, the form
//! comes back filled as it was sent, with the hub's reason. The store is
//! on loopback, so the hub allows private addresses. SQLite only.

#[path = "../../tests/support/s3.rs"]
mod s3;
mod support;

use axum::http::{Method, StatusCode};
use kube::api::Api;
use modelfleet_api::Role;
use modelfleet_api::config::ApiSettings;
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_fetch::testing::{Repo, tiny_model};
use s3::LocalS3;
use serde_json::json;
use support::hub::{SandboxSpec, roomy, test_settings};
use support::{Browser, Hub, Page, enrolled_staff, on_sqlite, tenant_with_admin};

const ACCESS_KEY: &str = "AKIACONSOLESTORE0001";
const SECRET_KEY: &str = "ConsoleStoreSecretKey0001abcdefgh";
const BUCKET: &str = "models";
const SOURCE: &str = "s3://models/tiny-chat";
const SOURCE_QUERY: &str = "source=s3%3A%2F%2Fmodels%2Ftiny-chat";

/// The tiny model's checkpoint (config.json and two shards of its real
/// shapes) as `s3://models/tiny-chat` on a store on loopback.
async fn store() -> LocalS3 {
    let repo = Repo::llama(&tiny_model("tiny-chat"), 2);
    let files: Vec<(String, Vec<u8>, u64)> = repo
        .files
        .iter()
        .map(|(name, file)| (format!("tiny-chat/{name}"), file.head.clone(), file.len))
        .collect();
    LocalS3::sparse(ACCESS_KEY, SECRET_KEY, BUCKET, &files).await
}

/// A hub that may reach private addresses (the store is on loopback),
/// with one sandbox cluster (no operator: what matters is what the hub
/// writes into it).
async fn hub(db: modelfleet_api::store::testing::TestDb) -> Hub {
    let spec = SandboxSpec {
        name: "aws-a",
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet: Fleet::example(),
        operator: None,
    };
    let settings = ApiSettings {
        source_allow_private_addresses: true,
        ..test_settings()
    };
    Hub::start_clusters(db, vec![spec], settings).await
}

/// The source form's credential choices.
fn offered(page: &Page) -> Vec<String> {
    page.attrs("form#source-form #source-credential option", "value")
}

/// The page holds no key of the store.
fn no_value_in(page: &Page) {
    let text = page.text();
    for value in [ACCESS_KEY, SECRET_KEY, &SECRET_KEY[4..20]] {
        assert!(!text.contains(value), "{value} is on the page:\n{text}");
    }
}

#[tokio::test]
async fn a_model_in_an_object_store_is_read_planned_and_deployed_with_a_kept_credential() {
    on_sqlite(|db| async move {
        let store = store().await;
        let hub = hub(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        // Another tenant keeps a credential for the same store.
        let (other, other_key) = hub.tenant("other", roomy()).await;
        let endpoint = format!("http://localhost:{}", store.port);
        let kept = hub
            .call(
                Method::PUT,
                &format!("/api/v1/tenants/{other}/source-credentials/other-store"),
                Some(&other_key),
                Some(json!({"keys": {
                    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_REGION": "us-east-1",
                }})),
            )
            .await;
        assert_eq!(kept.status, StatusCode::CREATED, "{:#}", kept.body);

        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;
        // The source form names object stores and the credentials page,
        // and offers none of the other tenant's credentials.
        let page = browser.get("/deploy").await;
        assert_eq!(page.status, StatusCode::OK);
        let hint = page.one("#source-hint");
        for says in [
            "hf://",
            "modelscope://",
            "s3://",
            "oss://",
            "obs://",
            "cos://",
        ] {
            assert!(hint.contains(says), "{says}: {hint}");
        }
        assert!(hint.contains("/credentials"), "{hint}");
        assert_eq!(offered(&page), [""]);
        assert_eq!(
            page.attrs("#source-credentials-link", "href"),
            ["/credentials"]
        );

        // And in Chinese.
        let page = browser.get("/language/zh?next=%2Fdeploy").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let page = browser.get("/deploy").await;
        let hint = page.one("#source-hint");
        assert!(
            hint.contains("s3://") && hint.contains("来源凭证"),
            "{hint}"
        );
        let page = browser.get("/deploy/source").await;
        assert!(
            page.one("#source-error").contains("s3://"),
            "{}",
            page.text()
        );
        let page = browser.get("/language/en?next=%2Fdeploy").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);

        // Without a credential: the hub's reason, naming the credential,
        // and the form as it was sent.
        let page = browser.get(&format!("/deploy/source?{SOURCE_QUERY}")).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(
            page.one("#source-error").contains("sourceCredential"),
            "{}",
            page.text()
        );
        assert_eq!(page.attrs("form#source-form #source", "value"), [SOURCE]);
        // Nor with the other tenant's credential's name: acme keeps none.
        let page = browser
            .get(&format!(
                "/deploy/source?{SOURCE_QUERY}&credential=other-store"
            ))
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(
            page.one("#source-error")
                .contains("no source credential named \"other-store\""),
            "{}",
            page.text()
        );
        // Without a source, the message gives an object store's example.
        let page = browser.get("/deploy/source").await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            page.one("#source-error").contains("s3://"),
            "{}",
            page.text()
        );

        // acme keeps the store's keys, and a model hub's token.
        for fields in [
            vec![
                ("name", "store".to_owned()),
                ("kind", "object-store".to_owned()),
                ("access_key_id", ACCESS_KEY.to_owned()),
                ("secret_access_key", SECRET_KEY.to_owned()),
                ("endpoint", endpoint.clone()),
                ("region", "us-east-1".to_owned()),
            ],
            vec![
                ("name", "hub".to_owned()),
                ("kind", "hugging-face".to_owned()),
                ("hf_token", "hfConsoleToken0000qrst".to_owned()),
            ],
        ] {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = browser.post("/credentials", &fields).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        }
        let page = browser.get("/deploy").await;
        assert_eq!(offered(&page), ["", "hub", "store"]);
        assert!(!page.text().contains("other-store"));

        // A credential without the store's keys: the hub says so, and the
        // form keeps the choice.
        let page = browser
            .get(&format!("/deploy/source?{SOURCE_QUERY}&credential=hub"))
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(
            page.one("#source-error")
                .contains("holds no object-store keys"),
            "{}",
            page.text()
        );
        assert_eq!(
            page.attrs("#source-credential option[selected]", "value"),
            ["hub"]
        );
        assert_eq!(page.attrs("form#source-form #source", "value"), [SOURCE]);

        // Read with the kept keys: its size, its plans, and forms carrying
        // the source and the credential along.
        let page = browser
            .get(&format!("/deploy/source?{SOURCE_QUERY}&credential=store"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.one("h1").contains("tiny-chat"), "{}", page.text());
        assert!(
            !page.texts("table#plans tbody tr").is_empty(),
            "{}",
            page.text()
        );
        assert_eq!(
            page.attrs("form#deploy-form input[name=source]", "value"),
            [SOURCE]
        );
        assert_eq!(
            page.attrs("#deploy-credential option[selected]", "value"),
            ["store"]
        );
        assert_eq!(
            page.attrs("#advanced form input[name=credential]", "value"),
            ["store"]
        );
        no_value_in(&page);
        // Re-planned with other options, still read with it.
        let page = browser
            .get(&format!(
                "/deploy/source?{SOURCE_QUERY}&credential=store&replicas=2"
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(page.attrs("#replicas", "value"), ["2"]);

        // Deployed: the ModelDeployment fetches from the store with the
        // credential's Secret.
        let name = "tiny-from-store";
        let page = browser
            .post(
                "/deploy/source",
                &[("name", name), ("source", SOURCE), ("credential", "store")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let list = hub.get("/api/v1/deployments", &hub.admin).await;
        assert_eq!(
            list.body["items"][0]["model"], "tiny-chat",
            "{:#}",
            list.body
        );
        let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
        let md = mds.get(name).await.unwrap();
        assert_eq!(md.spec.source, SOURCE);
        assert_eq!(
            md.spec.source_secret.as_deref(),
            Some("modelfleet-source-store")
        );
        // Deploying without it is refused with the form kept, and deploys
        // nothing more.
        let page = browser
            .post(
                "/deploy/source",
                &[("name", "tiny-bare"), ("source", SOURCE)],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(page.one("#source-error").contains("sourceCredential"));
        let list = hub.get("/api/v1/deployments", &hub.admin).await;
        assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));

        // The other tenant is offered its own credential, none of acme's.
        let other_admin = support::user(
            &hub,
            Some(other.parse().unwrap()),
            "other-admin",
            Role::TenantAdmin,
        );
        other_admin.await;
        let mut other_browser = Browser::new(&hub);
        other_browser.sign_in("other-admin").await;
        let page = other_browser.get("/deploy").await;
        assert_eq!(offered(&page), ["", "other-store"]);
        // Naming acme shows none of acme's.
        let page = other_browser.get(&format!("/deploy?tenant={acme}")).await;
        assert_eq!(offered(&page), [""]);

        // Platform staff see the credentials of the tenant they act for,
        // and none without naming one.
        let mut ops = enrolled_staff(&hub, &hub.state, "ops", Role::PlatformAdmin).await;
        let page = ops.get("/deploy").await;
        assert_eq!(offered(&page), [""]);
        let page = ops.get(&format!("/deploy?tenant={acme}")).await;
        assert_eq!(offered(&page), ["", "hub", "store"]);
        assert_eq!(
            page.attrs("form#source-form input[name=tenant]", "value"),
            [acme.to_string()]
        );
        assert_eq!(
            page.attrs("#source-credentials-link", "href"),
            [format!("/credentials?tenant={acme}")]
        );
        let page = ops
            .get(&format!(
                "/deploy/source?{SOURCE_QUERY}&tenant={acme}&credential=store"
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(
            page.attrs("#deploy-credential option", "value"),
            ["", "hub", "store"]
        );
        no_value_in(&page);
    })
    .await;
}
