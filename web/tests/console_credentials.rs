//! The source credentials page as a tenant admin, a developer, another
//! tenant and a platform admin meet it, read as HTML with the real hub: a
//! credential added through the form is listed with its hints and never
//! its values (anywhere in the page, not even in a refused form), bad input
//! says why and stores nothing, only admins change anything, removing is
//! refused while a deployment fetches with it, and the deploy page of a
//! model read from its source deploys with the credential chosen, whose
//! Secret the ModelDeployment names. SQLite only.

mod support;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use modelfleet_api::Role;
use modelfleet_api::config::ApiSettings;
use modelfleet_api::ids::TenantId;
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_fetch::testing::{FakeHub, GATED_TOKEN, Repo, tiny_model};
use support::hub::{SandboxSpec, test_settings};
use support::{Browser, Hub, Page, enrolled_staff, on_sqlite, tenant_with_admin, user};

/// An object store's key pair and session token, and two tokens: only
/// letters and digits, so that no escaping could hide one in a page.
const ACCESS_KEY: &str = "AKIACONSOLE0000WXYZ";
const SECRET_KEY: &str = "ConsoleSecretAccessKey0001abcdefgh";
const SESSION_TOKEN: &str = "ConsoleSessionToken0001ijklmnop";
const HF_TOKEN: &str = "hfConsoleToken0000qrst";
const ROTATED_SECRET: &str = "ConsoleSecretAccessKey0002abcdefgh";

/// Every value a test types into the form.
const VALUES: [&str; 5] = [
    ACCESS_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    HF_TOKEN,
    ROTATED_SECRET,
];

/// The whole answer holds none of the values typed.
fn no_value_in(page: &Page) {
    let text = page.text();
    for value in VALUES {
        assert!(!text.contains(value), "{value} is on the page:\n{text}");
    }
    // Nor their middles (a value cut or split across markup).
    for value in [SECRET_KEY, SESSION_TOKEN] {
        assert!(!text.contains(&value[4..20]), "part of {value}:\n{text}");
    }
}

/// The credentials a tenant keeps, as the hub opens them (to check what
/// was stored, and that nothing was).
async fn stored(hub: &Hub, tenant: TenantId, name: &str) -> Option<Vec<(String, String)>> {
    hub.store
        .open_source_credential(hub.state.keyring(), tenant, name)
        .await
        .unwrap()
        .map(|values| {
            values
                .into_iter()
                .map(|(k, v)| (k, v.expose().to_owned()))
                .collect()
        })
}

/// The rows of `#credentials`, by `data-credential`: each key with its
/// hint, `AWS_ACCESS_KEY_ID …WXYZ`.
fn rows(page: &Page) -> BTreeMap<String, Vec<String>> {
    page.attrs("#credentials tbody tr", "data-credential")
        .into_iter()
        .map(|name| {
            let keys = page.texts(&format!(
                "#credentials tr[data-credential=\"{name}\"] td.keys li"
            ));
            (name, keys)
        })
        .collect()
}

fn object_store(name: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_owned()),
        ("kind", "object-store".to_owned()),
        ("access_key_id", ACCESS_KEY.to_owned()),
        ("secret_access_key", secret.to_owned()),
        ("session_token", SESSION_TOKEN.to_owned()),
    ]
}

fn hugging_face(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_owned()),
        ("kind", "hugging-face".to_owned()),
        ("hf_token", HF_TOKEN.to_owned()),
    ]
}

async fn post(browser: &mut Browser, path: &str, fields: &[(&'static str, String)]) -> Page {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post(path, &fields).await
}

#[tokio::test]
async fn a_credential_added_through_the_form_is_listed_with_hints_and_never_its_values() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // The navigation leads to it; nothing is kept yet.
        let page = browser.get("/deployments").await;
        assert!(
            page.attrs("nav a", "href")
                .contains(&"/credentials".to_owned())
        );
        let page = browser.get("/credentials").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.has("#no-credentials"));
        assert_eq!(
            page.attrs("nav a[aria-current=page]", "href"),
            ["/credentials"]
        );
        // The form: every secret a password field, nothing remembered.
        assert!(page.has("#credential-form"));
        assert_eq!(
            page.attrs("#credential-form", "autocomplete"),
            ["off"],
            "the form"
        );
        for field in [
            "secret_access_key",
            "session_token",
            "hf_token",
            "modelscope_token",
        ] {
            assert_eq!(
                page.attrs(&format!("#{field}"), "type"),
                ["password"],
                "{field}"
            );
        }
        for field in [
            "access_key_id",
            "secret_access_key",
            "session_token",
            "hf_token",
            "modelscope_token",
        ] {
            assert_eq!(
                page.attrs(&format!("#{field}"), "autocomplete"),
                ["off"],
                "{field}"
            );
            assert!(
                page.attrs(&format!("#{field}"), "value").is_empty(),
                "{field}"
            );
        }
        assert_eq!(
            page.attrs("#credential-kind option", "value"),
            ["object-store", "hugging-face", "modelscope"]
        );
        assert!(
            page.one("#credential-kind")
                .contains("Object store (S3, OSS, OBS, COS)")
        );

        // Added: an object store's keys and a Hugging Face token.
        let page = post(
            &mut browser,
            "/credentials",
            &object_store("store", SECRET_KEY),
        )
        .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(page.location(), Some("/credentials"));
        no_value_in(&page);
        let page = post(&mut browser, "/credentials", &hugging_face("hub")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());

        let page = browser.get("/credentials").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        no_value_in(&page);
        let listed = rows(&page);
        assert_eq!(
            listed,
            BTreeMap::from([
                ("hub".to_owned(), vec!["HF_TOKEN …qrst".to_owned()]),
                (
                    "store".to_owned(),
                    vec![
                        "AWS_ACCESS_KEY_ID …WXYZ".to_owned(),
                        "AWS_SECRET_ACCESS_KEY set".to_owned(),
                        "AWS_SESSION_TOKEN set".to_owned(),
                    ]
                ),
            ])
        );
        assert_eq!(
            page.one("tr[data-credential=store] td.secret"),
            "modelfleet-source-store"
        );
        assert_eq!(
            page.one("tr[data-credential=store] td.used-by"),
            "no deployment"
        );
        assert!(!page.one("tr[data-credential=store] td.updated").is_empty());
        // Each has its remove button, with the console's CSRF token.
        assert_eq!(
            page.attrs("form.remove-form", "action"),
            ["/credentials/hub/delete", "/credentials/store/delete"]
        );
        let token = browser.cookies["mf_csrf"].clone();
        assert!(
            page.attrs("form.remove-form input[name=csrf]", "value")
                .iter()
                .all(|v| *v == token)
        );
        // The hub keeps what was typed, under the variables fetch reads.
        assert_eq!(
            stored(&hub, acme, "store").await,
            Some(vec![
                ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY.to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), SECRET_KEY.to_owned()),
                ("AWS_SESSION_TOKEN".to_owned(), SESSION_TOKEN.to_owned()),
            ])
        );

        // Saved again under its name: replaced, all its keys, now with
        // a private store's endpoint, which is shown whole.
        let mut fields = object_store("store", ROTATED_SECRET);
        fields.pop();
        fields.push(("endpoint", "http://10.0.0.5:9000".to_owned()));
        let page = post(&mut browser, "/credentials", &fields).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = browser.get("/credentials").await;
        no_value_in(&page);
        assert_eq!(
            rows(&page)["store"],
            [
                "AWS_ACCESS_KEY_ID …WXYZ",
                "AWS_ENDPOINT_URL http://10.0.0.5:9000",
                "AWS_SECRET_ACCESS_KEY set"
            ]
        );
        assert_eq!(
            stored(&hub, acme, "store").await,
            Some(vec![
                ("AWS_ACCESS_KEY_ID".to_owned(), ACCESS_KEY.to_owned()),
                (
                    "AWS_ENDPOINT_URL".to_owned(),
                    "http://10.0.0.5:9000".to_owned()
                ),
                (
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    ROTATED_SECRET.to_owned()
                ),
            ])
        );
        // An endpoint carrying a password is refused, without echoing it.
        let mut fields = object_store("store", ROTATED_SECRET);
        fields.push(("endpoint", "https://u:hunter2pw@minio:9000".to_owned()));
        let page = post(&mut browser, "/credentials", &fields).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.one("#credential-error").contains("AWS_ENDPOINT_URL"));
        assert!(!page.text().contains("hunter2pw"));

        // In Chinese, too.
        browser
            .cookies
            .insert("mf_lang".to_owned(), "zh".to_owned());
        let page = browser.get("/credentials").await;
        assert_eq!(page.one("h1"), "模型来源凭证");
        assert!(
            page.one("tr[data-credential=store] td.keys")
                .contains("已设置"),
            "{}",
            page.text()
        );
        assert!(page.texts("nav a").contains(&"来源凭证".to_owned()));
        no_value_in(&page);
    })
    .await;
}

#[tokio::test]
async fn bad_input_says_why_shows_no_value_and_stores_nothing() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        let secret = ("secret_access_key", SECRET_KEY.to_owned());
        let access = ("access_key_id", ACCESS_KEY.to_owned());
        let hf = ("hf_token", HF_TOKEN.to_owned());
        let named =
            |name: &str, kind: &str| vec![("name", name.to_owned()), ("kind", kind.to_owned())];
        let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
            // A kind the form does not offer.
            (
                [named("store", "ftp"), vec![access.clone(), secret.clone()]].concat(),
                "Choose a kind",
            ),
            // An object store without its secret access key.
            (
                [named("store", "object-store"), vec![access.clone()]].concat(),
                "required and empty: Secret access key",
            ),
            // A session token alone.
            (
                [
                    named("store", "object-store"),
                    vec![("session_token", SESSION_TOKEN.to_owned())],
                ]
                .concat(),
                "Access key ID, Secret access key",
            ),
            // Names the hub refuses, and none at all.
            (
                [named("Store_1", "hugging-face"), vec![hf.clone()]].concat(),
                "lower-case letters",
            ),
            (
                [named("-store", "hugging-face"), vec![hf.clone()]].concat(),
                "starting with a letter",
            ),
            (
                [named("", "hugging-face"), vec![hf.clone()]].concat(),
                "Give the credential a name",
            ),
            // Fields of another kind than the one chosen.
            (
                [
                    named("store", "hugging-face"),
                    vec![hf.clone(), secret.clone()],
                ]
                .concat(),
                "another kind",
            ),
            // A value no key has: too short, or with a space.
            (
                [
                    named("store", "hugging-face"),
                    vec![("hf_token", "hf_x".to_owned())],
                ]
                .concat(),
                "8 to 4096",
            ),
            (
                [
                    named("store", "modelscope"),
                    vec![("modelscope_token", "ms token with spaces".to_owned())],
                ]
                .concat(),
                "spaces",
            ),
        ];
        for (fields, says) in cases {
            let page = post(&mut browser, "/credentials", &fields).await;
            assert_eq!(
                page.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{fields:?}: {}",
                page.text()
            );
            let error = page.one("#credential-error");
            assert!(error.contains(says), "{says}: {error}");
            no_value_in(&page);
            assert!(!page.text().contains("ms token with spaces"));
            // The name and the kind come back, the values never do.
            assert_eq!(
                page.attrs("#credential-name", "value"),
                [fields[0].1.clone()]
            );
            let kind = &fields[1].1;
            let selected = page.attrs("#credential-kind option[selected]", "value");
            if kind == "ftp" {
                assert_eq!(selected, ["object-store"]);
            } else {
                assert_eq!(selected, [kind.as_str()]);
            }
            for field in [
                "access_key_id",
                "secret_access_key",
                "session_token",
                "hf_token",
                "modelscope_token",
            ] {
                assert!(
                    page.attrs(&format!("#{field}"), "value").is_empty(),
                    "{field}"
                );
            }
            // Nothing is kept.
            assert!(page.has("#no-credentials"), "{}", page.text());
        }
        for name in ["store", "Store_1", "-store", ""] {
            assert_eq!(stored(&hub, acme, name).await, None, "{name}");
        }
        let page = browser.get("/credentials").await;
        assert!(page.has("#no-credentials"));
    })
    .await;
}

#[tokio::test]
async fn developers_see_the_list_without_the_forms_and_cannot_change_it() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        let mut admin = Browser::new(&hub);
        admin.sign_in("acme-admin").await;
        let page = post(&mut admin, "/credentials", &hugging_face("hub")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());

        user(&hub, Some(acme), "dev", Role::Developer).await;
        let mut dev = Browser::new(&hub);
        dev.sign_in("dev").await;
        let page = dev.get("/credentials").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(rows(&page)["hub"], ["HF_TOKEN …qrst"]);
        assert!(page.has("#credentials-read-only"));
        assert!(!page.has("#credential-form"));
        assert!(!page.has("form.remove-form"));
        assert!(!page.has("input[type=password]"));
        no_value_in(&page);

        // Posting anyway is refused and changes nothing.
        let mut fields = hugging_face("hub");
        fields[2].1 = "hfDeveloperToken0000zzzz".to_owned();
        let page = post(&mut dev, "/credentials", &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        assert!(page.one("#error-message").contains("admins"));
        let page = post(&mut dev, "/credentials", &hugging_face("mine")).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        // Even with input the form would refuse: the role is looked at first.
        let page = dev
            .post("/credentials", &[("name", "x"), ("kind", "ftp")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        let page = dev.post("/credentials/hub/delete", &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        assert_eq!(
            stored(&hub, acme, "hub").await,
            Some(vec![("HF_TOKEN".to_owned(), HF_TOKEN.to_owned())])
        );
        assert_eq!(stored(&hub, acme, "mine").await, None);

        // A viewer, the same.
        user(&hub, Some(acme), "watcher", Role::Viewer).await;
        let mut viewer = Browser::new(&hub);
        viewer.sign_in("watcher").await;
        let page = viewer.get("/credentials").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("tr[data-credential=hub]"));
        assert!(!page.has("#credential-form"));
        let page = viewer.post("/credentials/hub/delete", &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn another_tenant_sees_none_of_it_and_platform_admins_name_the_tenant() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        tenant_with_admin(&hub, "other").await;
        let mut admin = Browser::new(&hub);
        admin.sign_in("acme-admin").await;
        let page = post(&mut admin, "/credentials", &hugging_face("acme-private")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());

        let mut other = Browser::new(&hub);
        other.sign_in("other-admin").await;
        let page = other.get("/credentials").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("#no-credentials"));
        assert!(!page.text().contains("acme-private"));
        no_value_in(&page);
        // Naming acme: not found, to read or to write.
        let acme_id = acme.to_string();
        let page = other.get(&format!("/credentials?tenant={acme}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        let mut fields = hugging_face("acme-private");
        fields.push(("tenant", acme_id.clone()));
        fields[2].1 = "hfOtherTenantToken00zz".to_owned();
        let page = post(&mut other, "/credentials", &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        let page = other
            .post("/credentials/acme-private/delete", &[("tenant", &acme_id)])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        // Without naming it, the name is looked up in their own tenant.
        let page = other.post("/credentials/acme-private/delete", &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        assert_eq!(
            stored(&hub, acme, "acme-private").await,
            Some(vec![("HF_TOKEN".to_owned(), HF_TOKEN.to_owned())])
        );

        // A platform admin picks the tenant, and acts for it.
        let mut ops = enrolled_staff(&hub, &hub.state, "ops", Role::PlatformAdmin).await;
        let page = ops.get("/credentials").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(
            page.attrs("#tenant-pick a", "href")
                .contains(&format!("/credentials?tenant={acme}"))
        );
        let page = ops.get(&format!("/credentials?tenant={acme}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.has("tr[data-credential=acme-private]"));
        assert_eq!(
            page.attrs("#credential-form input[name=tenant]", "value"),
            [acme_id.as_str()]
        );
        let mut fields = object_store("ops-store", SECRET_KEY);
        fields.push(("tenant", acme_id.clone()));
        let page = post(&mut ops, "/credentials", &fields).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(
            page.location(),
            Some(format!("/credentials?tenant={acme}").as_str())
        );
        let page = ops.get(&format!("/credentials?tenant={acme}")).await;
        assert!(page.has("tr[data-credential=ops-store]"));
        no_value_in(&page);
        let page = ops
            .post("/credentials/ops-store/delete", &[("tenant", &acme_id)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(stored(&hub, acme, "ops-store").await, None);
    })
    .await;
}

/// A hub whose Hugging Face Hub is a fake one on loopback holding
/// `acme/tiny-chat`, with one sandbox cluster (no operator: what matters
/// is what the hub writes into it).
async fn source_hub(db: modelfleet_api::store::testing::TestDb) -> (Hub, FakeHub) {
    let open = Repo::llama(&tiny_model("tiny-chat"), 2);
    let gated = Repo {
        gated: true,
        ..open.clone()
    };
    let models = FakeHub::start(BTreeMap::from([
        ("acme/tiny-chat".to_owned(), open),
        ("acme/gated-chat".to_owned(), gated),
    ]))
    .await;
    let spec = SandboxSpec {
        name: "aws-a",
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet: Fleet::example(),
        operator: None,
    };
    let settings = ApiSettings {
        hf_endpoint: Some(models.endpoint.clone()),
        ..test_settings()
    };
    (Hub::start_clusters(db, vec![spec], settings).await, models)
}

#[tokio::test]
async fn a_model_deployed_from_its_source_fetches_with_the_chosen_credential() {
    on_sqlite(|db| async move {
        let (hub, _models) = source_hub(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;
        let page = post(&mut browser, "/credentials", &hugging_face("hub")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());

        // The deploy form offers the tenant's credentials, none chosen.
        let page = browser
            .get("/deploy/source?source=hf%3A%2F%2Facme%2Ftiny-chat")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(
            page.attrs("form#deploy-form #deploy-credential option", "value"),
            ["", "hub"]
        );
        assert!(
            page.attrs("#deploy-credential option[selected]", "value")
                .is_empty()
        );
        assert_eq!(page.attrs("#credentials-link", "href"), ["/credentials"]);
        no_value_in(&page);
        // A gated model is read with the chosen credential's token, and
        // without one is refused.
        let gated = "/deploy/source?source=hf%3A%2F%2Facme%2Fgated-chat";
        let refused = browser.get(gated).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields = vec![
            ("name", "gated-key".to_owned()),
            ("kind", "hugging-face".to_owned()),
            ("hf_token", GATED_TOKEN.to_owned()),
        ];
        let page = post(&mut browser, "/credentials", &fields).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = browser.get(&format!("{gated}&credential=gated-key")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert_eq!(
            page.attrs("#deploy-credential option[selected]", "value"),
            ["gated-key"]
        );
        // A catalog model's page has no such choice.
        let page = browser.get("/deploy/llama-3.1-8b").await;
        assert!(!page.has("#deploy-credential"));

        // A credential the tenant does not keep, or no name at all, is
        // refused with the reason, keeps the choice shown, deploys nothing.
        let name = "tiny-with-key";
        for (credential, status, says) in [
            (
                "nope",
                StatusCode::UNPROCESSABLE_ENTITY,
                "no source credential named \"nope\"",
            ),
            ("../x", StatusCode::UNPROCESSABLE_ENTITY, "lower-case"),
        ] {
            let page = browser
                .post(
                    "/deploy/source",
                    &[
                        ("name", name),
                        ("source", "hf://acme/tiny-chat"),
                        ("credential", credential),
                    ],
                )
                .await;
            assert_eq!(page.status, status, "{credential}: {}", page.text());
            assert!(
                page.one("#deploy-error").contains(says),
                "{says}: {}",
                page.text()
            );
        }
        let list = hub.get("/api/v1/deployments", &hub.admin).await;
        assert_eq!(list.body["items"], serde_json::json!([]), "{:#}", list.body);

        // Deployed with it: the ModelDeployment names its Secret, which the
        // hub wrote into the tenant's namespace first.
        let page = browser
            .post(
                "/deploy/source",
                &[
                    ("name", name),
                    ("source", "hf://acme/tiny-chat"),
                    ("credential", "hub"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let location = page.location().unwrap().to_owned();
        let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
        let md = mds.get(name).await.unwrap();
        assert_eq!(
            md.spec.source_secret.as_deref(),
            Some("modelfleet-source-hub")
        );
        assert_eq!(md.spec.source, "hf://acme/tiny-chat");
        let secrets: Api<Secret> = Api::namespaced(hub.kube.clone(), "mf-acme");
        let secret = secrets.get("modelfleet-source-hub").await.unwrap();
        let data = secret.data.unwrap_or_default();
        assert_eq!(
            data.get("HF_TOKEN").map(|v| v.0.as_slice()),
            Some(HF_TOKEN.as_bytes())
        );

        // The list says who uses it; removing it is refused, naming them.
        let page = browser.get("/credentials").await;
        assert_eq!(page.one("tr[data-credential=hub] td.used-by"), name);
        let page = browser.post("/credentials/hub/delete", &[]).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.text());
        let error = page.one("#remove-error");
        assert!(error.contains(name) && error.contains("in use"), "{error}");
        assert!(page.has("tr[data-credential=hub]"));
        no_value_in(&page);
        assert!(stored(&hub, acme, "hub").await.is_some());
        assert!(
            secrets
                .get_opt("modelfleet-source-hub")
                .await
                .unwrap()
                .is_some()
        );

        // Once the deployment is gone, it is removed, here and in the cluster.
        let page = browser.post(&format!("{location}/delete"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = browser.post("/credentials/hub/delete", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(page.location(), Some("/credentials"));
        let page = browser.get("/credentials").await;
        assert!(!page.has("tr[data-credential=hub]"));
        assert!(page.has("tr[data-credential=gated-key]"));
        assert_eq!(stored(&hub, acme, "hub").await, None);
        assert!(
            secrets
                .get_opt("modelfleet-source-hub")
                .await
                .unwrap()
                .is_none()
        );
        // Removing it again: it is not there.
        let page = browser.post("/credentials/hub/delete", &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
    })
    .await;
}
