//! Issue 16, finding 5 (an account's lifecycle) and the rest of finding 3
//! (a tenant may ask its people for a second factor; the first-start
//! admin must choose a password). On main none of this existed: no way
//! to disable, unlock, delete or demote an account, reset a lost password
//! or second factor, or end someone's sessions; first-start credentials
//! stayed valid forever; tenant admins were never asked to enrol.

mod support;

use axum::http::{Method, StatusCode};
use modelfleet_api::store::testing::TestDb;
use serde_json::{Value, json};
use support::{Hub, enrol_totp, roomy};

const PASSWORD: &str = "Correct-horse-2024!";
const PROBLEMS: &str = "https://modelfleet.io/problems/";

/// A user of the tenant the key administers: their id.
async fn add_user(hub: &Hub, key: &str, username: &str, role: &str) -> String {
    let reply = hub
        .post(
            "/api/v1/users",
            key,
            json!({"username": username, "password": PASSWORD, "role": role}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn patch(hub: &Hub, path: &str, token: &str, body: Value) -> support::Reply {
    hub.call(Method::PATCH, path, Some(token), Some(body)).await
}

async fn delete(hub: &Hub, path: &str, token: &str) -> support::Reply {
    hub.call(Method::DELETE, path, Some(token), None).await
}

async fn an_admin_runs_a_team_members_account_from_start_to_end(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let bob = add_user(&hub, &key, "bob", "developer").await;
    let user = format!("/api/v1/users/{bob}");
    let session = hub.sign_in("bob", PASSWORD).await;

    // A new role takes effect on his very next request.
    let reply = patch(&hub, &user, &key, json!({"role": "viewer"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    let deploy = json!({"name": "x", "model": "llama-3.1-8b"});
    hub.post("/api/v1/deployments", &session, deploy.clone())
        .await
        .problem(403);

    // Disabled: his session stops at once and he cannot sign in.
    let reply = patch(&hub, &user, &key, json!({"disabled": true})).await;
    assert!(!reply.body["disabledAt"].is_null(), "{:#}", reply.body);
    hub.get("/api/v1/deployments", &session).await.problem(401);
    hub.sign_in_reply("bob", PASSWORD).await.problem(401);
    patch(&hub, &user, &key, json!({"disabled": false})).await;
    let session = hub.sign_in("bob", PASSWORD).await;

    // Locked after five wrong passwords, even the right one is refused
    // until an admin unlocks the account.
    for _ in 0..5 {
        hub.sign_in_reply("bob", "Wrong-password-99")
            .await
            .problem(401);
    }
    hub.sign_in_reply("bob", PASSWORD).await.problem(401);
    let reply = hub
        .call(Method::POST, &format!("{user}/unlock"), Some(&key), None)
        .await;
    assert!(reply.body["lockedUntil"].is_null(), "{:#}", reply.body);
    hub.sign_in("bob", PASSWORD).await;

    // He forgot his password: a temporary one ends his sessions, and he
    // must choose his own before anything else.
    let reply = hub
        .call(
            Method::PUT,
            &format!("{user}/password"),
            Some(&key),
            Some(json!({"newPassword": "Temporary-horse-77"})),
        )
        .await;
    assert_eq!(reply.body["mustChangePassword"], true, "{:#}", reply.body);
    hub.get("/api/v1/deployments", &session).await.problem(401);
    hub.sign_in_reply("bob", PASSWORD).await.problem(401);
    let session = hub.sign_in("bob", "Temporary-horse-77").await;
    let reply = hub.get("/api/v1/deployments", &session).await;
    reply.problem(403);
    assert_eq!(
        reply.body["type"],
        format!("{PROBLEMS}password-change-required")
    );
    // Nor does the session call models through the gateway meanwhile.
    let reply = hub.get("/v1/models", &session).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:#}", reply.body);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("new password"),
        "{:#}",
        reply.body
    );
    let me = hub.get("/api/v1/users/me", &session).await;
    assert_eq!(me.body["mustChangePassword"], true, "{:#}", me.body);
    let change = |current: &str, new: &str| json!({"currentPassword": current, "newPassword": new});
    for (body, field) in [
        (
            change("Not-my-password-1", "Sailing-choice-26"),
            "currentPassword",
        ),
        (
            change("Temporary-horse-77", "Temporary-horse-77"),
            "newPassword",
        ),
        (change("Temporary-horse-77", "password123"), "newPassword"),
    ] {
        let reply = hub.post("/api/v1/users/me/password", &session, body).await;
        let detail = reply.problem(422);
        assert_eq!(reply.body["field"], field, "{detail}");
    }
    let reply = hub
        .post(
            "/api/v1/users/me/password",
            &session,
            change("Temporary-horse-77", "Sailing-choice-26"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    assert_eq!(
        hub.get("/api/v1/deployments", &session).await.status,
        StatusCode::OK
    );
    hub.sign_in_reply("bob", "Temporary-horse-77")
        .await
        .problem(401);

    // Every session ended at once, then the account deleted.
    let second = hub.sign_in("bob", "Sailing-choice-26").await;
    let reply = delete(&hub, &format!("{user}/sessions"), &key).await;
    assert_eq!(reply.body["ended"], 2, "{:#}", reply.body);
    for token in [&session, &second] {
        hub.get("/api/v1/deployments", token).await.problem(401);
    }
    let second = hub.sign_in("bob", "Sailing-choice-26").await;
    assert_eq!(
        delete(&hub, &user, &key).await.status,
        StatusCode::NO_CONTENT
    );
    hub.get("/api/v1/deployments", &second).await.problem(401);
    hub.sign_in_reply("bob", "Sailing-choice-26")
        .await
        .problem(401);
    hub.get(&user, &key).await.problem(404);

    // Each step is in the audit trail under its own verb.
    let trail = hub
        .get("/api/v1/audit?limit=500", &hub.admin)
        .await
        .body
        .to_string();
    for verb in [
        "\"update\"",
        "\"unlock\"",
        "\"reset-password\"",
        "\"change-password\"",
        "\"end-sessions\"",
        "\"delete\"",
    ] {
        assert!(trail.contains(verb), "no {verb} record");
    }
}

async fn nobody_escalates_or_reaches_past_their_own_team(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, acme) = hub.tenant("acme", roomy()).await;
    let (_, globex) = hub.tenant("globex", roomy()).await;
    let carol = add_user(&hub, &acme, "carol", "tenant-admin").await;
    let dave = add_user(&hub, &acme, "dave", "developer").await;
    let gina = add_user(&hub, &globex, "gina", "developer").await;
    let carol_session = hub.sign_in("carol", PASSWORD).await;
    let dave_session = hub.sign_in("dave", PASSWORD).await;

    // Another tenant's people do not exist for acme's admins.
    let gina_path = format!("/api/v1/users/{gina}");
    for reply in [
        patch(&hub, &gina_path, &acme, json!({"role": "viewer"})).await,
        delete(&hub, &gina_path, &acme).await,
        delete(&hub, &format!("{gina_path}/sessions"), &carol_session).await,
        hub.call(
            Method::POST,
            &format!("{gina_path}/unlock"),
            Some(&acme),
            None,
        )
        .await,
    ] {
        reply.problem(404);
    }
    // No one hands out more than they have, or a role that does not fit.
    let dave_path = format!("/api/v1/users/{dave}");
    patch(&hub, &dave_path, &acme, json!({"role": "platform-admin"}))
        .await
        .problem(422);
    // A developer administers nobody, but may end their own sessions.
    patch(
        &hub,
        &dave_path,
        &dave_session,
        json!({"role": "tenant-admin"}),
    )
    .await
    .problem(403);
    delete(
        &hub,
        &format!("/api/v1/users/{carol}/sessions"),
        &dave_session,
    )
    .await
    .problem(403);
    // An admin cannot demote, disable or delete themself (so the last
    // admin cannot lock everyone out by a slip).
    let carol_path = format!("/api/v1/users/{carol}");
    for body in [json!({"role": "developer"}), json!({"disabled": true})] {
        patch(&hub, &carol_path, &carol_session, body)
            .await
            .problem(422);
    }
    delete(&hub, &carol_path, &carol_session).await.problem(422);
    let me = hub.get("/api/v1/users/me", &carol_session).await;
    assert_eq!(me.body["role"], "tenant-admin", "{:#}", me.body);
    // A key is not a person.
    hub.get("/api/v1/users/me", &acme).await.problem(422);
    let reply = delete(&hub, &format!("{dave_path}/sessions"), &dave_session).await;
    assert_eq!(reply.body["ended"], 1, "{:#}", reply.body);
    hub.get("/api/v1/deployments", &dave_session)
        .await
        .problem(401);
}

async fn resetting_a_second_factor_takes_the_admins_own(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let erin = add_user(&hub, &key, "erin", "developer").await;
    let erin_session = hub.sign_in("erin", PASSWORD).await;
    enrol_totp(&hub, &erin_session).await;
    let reset = format!("/api/v1/users/{erin}/totp/reset");
    let any = json!({"code": "123456"});

    // An API key cannot, and neither can an admin with no factor of their own.
    hub.post(&reset, &key, any.clone()).await.problem(422);
    let root = hub.admin.clone();
    let detail = hub.post(&reset, &root, any.clone()).await.problem(422);
    assert!(detail.contains("your own"), "{detail}");
    let secret = enrol_totp(&hub, &root).await;
    // A wrong code of the admin's is refused and changes nothing.
    hub.post(&reset, &root, any).await.problem(422);
    let erin_now = hub.get(&format!("/api/v1/users/{erin}"), &root).await;
    assert_eq!(erin_now.body["totpEnabled"], true, "{:#}", erin_now.body);
    // The right one (the next step's: this step's was used to enrol).
    let now = chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now()).timestamp();
    let code = modelfleet_api::identity::totp::code_at(&secret, now + 30);
    let reply = hub.post(&reset, &root, json!({"code": code})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    assert_eq!(reply.body["totpEnabled"], false, "{:#}", reply.body);
    hub.get("/api/v1/deployments", &erin_session)
        .await
        .problem(401);
    // She signs in with her password alone and may enrol again.
    let erin_session = hub.sign_in("erin", PASSWORD).await;
    enrol_totp(&hub, &erin_session).await;
}

async fn a_tenant_can_ask_its_admins_for_a_second_factor(db: TestDb) {
    // The test settings ask no role for one: only the tenant does here.
    let hub = Hub::start(db).await;
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    add_user(&hub, &key, "carol", "tenant-admin").await;
    add_user(&hub, &key, "dave", "developer").await;
    let carol = hub.sign_in("carol", PASSWORD).await;
    let dave = hub.sign_in("dave", PASSWORD).await;
    assert_eq!(
        hub.get("/api/v1/users", &carol).await.status,
        StatusCode::OK
    );

    let policy = format!("/api/v1/tenants/{tenant}/second-factor");
    hub.call(
        Method::PUT,
        &policy,
        Some(&dave),
        Some(json!({"roles": ["tenant-admin"]})),
    )
    .await
    .problem(403);
    let reply = hub
        .call(
            Method::PUT,
            &policy,
            Some(&key),
            Some(json!({"roles": ["tenant-admin"]})),
        )
        .await;
    assert_eq!(
        reply.body["roles"],
        json!(["tenant-admin"]),
        "{:#}",
        reply.body
    );
    // Another tenant's admin cannot read or set it: no such tenant to them.
    let (_, globex) = hub.tenant("globex", roomy()).await;
    hub.get(&policy, &globex).await.problem(404);
    hub.call(
        Method::PUT,
        &policy,
        Some(&globex),
        Some(json!({"roles": []})),
    )
    .await
    .problem(404);

    // Carol's very next request: enrol first. Dave is not asked.
    let reply = hub.get("/api/v1/users", &carol).await;
    reply.problem(403);
    assert_eq!(
        reply.body["type"],
        format!("{PROBLEMS}second-factor-required")
    );
    assert_eq!(
        hub.get("/api/v1/deployments", &dave).await.status,
        StatusCode::OK
    );
    enrol_totp(&hub, &carol).await;
    assert_eq!(
        hub.get("/api/v1/users", &carol).await.status,
        StatusCode::OK
    );
    let shown = hub.get(&policy, &carol).await;
    assert_eq!(
        shown.body["roles"],
        json!(["tenant-admin"]),
        "{:#}",
        shown.body
    );
}

async fn the_first_start_admin_must_choose_a_password_and_the_demo_need_not(db: TestDb) {
    let store = db.store.clone();
    // `Hub::start` makes its own admin; the first start runs on a bare store.
    let created = modelfleet_api::bootstrap::first_start(&store, |_| Ok(()))
        .await
        .unwrap()
        .expect("a first start on an empty store");
    let users = store
        .users(modelfleet_api::identity::Scope::All)
        .await
        .unwrap();
    let of = |name: &str| users.iter().find(|u| u.username == name).unwrap();
    assert!(of(&created.admin_user).must_change_password);
    assert!(!of(&created.demo.as_ref().unwrap().tenant_user).must_change_password);
}

async fn ended_sessions_are_purged(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    add_user(&hub, &key, "fay", "developer").await;
    let before = hub.store.session_rows().await.unwrap();
    let one = hub.sign_in("fay", PASSWORD).await;
    let _two = hub.sign_in("fay", PASSWORD).await;
    delete(&hub, "/api/v1/sessions/current", &one).await;
    assert_eq!(hub.store.session_rows().await.unwrap(), before + 2);
    let now = chrono::DateTime::<chrono::Utc>::from(modelfleet_clock::now());
    let purged = hub.store.purge_ended_sessions(now).await.unwrap();
    assert_eq!(purged, 1, "only the ended session goes");
    assert_eq!(hub.store.session_rows().await.unwrap(), before + 1);
}

modelfleet_api::store_tests!(an_admin_runs_a_team_members_account_from_start_to_end);
modelfleet_api::store_tests!(nobody_escalates_or_reaches_past_their_own_team);
modelfleet_api::store_tests!(resetting_a_second_factor_takes_the_admins_own);
modelfleet_api::store_tests!(a_tenant_can_ask_its_admins_for_a_second_factor);
modelfleet_api::store_tests!(the_first_start_admin_must_choose_a_password_and_the_demo_need_not);
modelfleet_api::store_tests!(ended_sessions_are_purged);
