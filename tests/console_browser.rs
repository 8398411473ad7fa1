//! End to end in a real browser: `modelfleet serve` started in process,
//! its web console driven in headless Chromium over WebDriver the way a
//! tenant developer clicks through it. The demo tenant admin signs in,
//! picks `llama-3.1-70b` from the catalog, deploys it with one click on
//! the ranked plans, watches it become Ready without reloading, scales it,
//! finds it on the billing and audit pages, switches the console to
//! Chinese and back, deletes it and signs out. Then the platform admin
//! signs in, is made to enrol a second factor (TOTP) first, and downloads
//! the compliance report's PDF.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; CI installs them) and fails without.
//! Screenshots of every main page land in
//! `$CARGO_TARGET_TMPDIR/console-screenshots/`; on a failure, a screenshot
//! and the page's source named `failure-*` land next to them.

#[path = "support/serve.rs"]
mod serve;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use webdriver::{Browser, Element, WebDriverError};

/// How long a page or a deployment may take to get where the flow expects.
const READY: Duration = Duration::from_secs(90);
/// How long usage may take to reach the billing page (a sync pass).
const USAGE: Duration = Duration::from_secs(60);
/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(500);

const MODEL: &str = "llama-3.1-70b";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The browser on the console, and where its pictures go.
struct Console {
    browser: Browser,
    base: String,
    shots: PathBuf,
    taken: Cell<u32>,
}

impl Console {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The current page's path and query, without the origin.
    async fn path(&self) -> anyhow::Result<String> {
        let url = self.browser.current_url().await?;
        Ok(url
            .strip_prefix(&self.base)
            .map_or_else(|| url.clone(), str::to_owned))
    }

    async fn open(&self, path: &str) -> anyhow::Result<()> {
        self.browser.goto(&self.url(path)).await?;
        Ok(())
    }

    /// Checks `probe` every [`POLL`] until it finds something, for at most
    /// `timeout`. WebDriver errors (no such element yet, a stale element
    /// htmx just swapped out) count as "not yet"; the last one is reported
    /// when time runs out.
    async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut() -> Result<Option<T>, WebDriverError>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            match probe().await {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if Instant::now() >= deadline {
                let path = self.path().await.unwrap_or_default();
                match last_error {
                    Some(e) => bail!("{what}: not after {timeout:?} on {path}; last: {e}"),
                    None => bail!("{what}: not after {timeout:?} on {path}"),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn element(&self, css: &str) -> anyhow::Result<Element> {
        self.wait_for(&format!("an element {css}"), READY, async || {
            self.browser.find(css).await.map(Some)
        })
        .await
    }

    /// Waits until the current page's path (and query) satisfies `want`.
    async fn wait_path(&self, what: &str, want: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        self.wait_for(&format!("on {what}"), READY, async || {
            let url = self.browser.current_url().await?;
            let path = url.strip_prefix(&self.base).unwrap_or(&url);
            Ok(want(path).then(|| path.to_owned()))
        })
        .await
    }

    /// Waits until the text of the element `css` satisfies `want`.
    async fn wait_text(
        &self,
        css: &str,
        what: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let last = Cell::new(String::new());
        self.wait_for(&format!("{css} {what}"), timeout, async || {
            let text = self.browser.text(&self.browser.find(css).await?).await?;
            let done = want(text.trim());
            last.set(text.trim().to_owned());
            Ok(done.then(|| text.trim().to_owned()))
        })
        .await
        .with_context(|| format!("{css} said {:?}", last.take()))
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.wait_for(&format!("clicking {css}"), READY, async || {
            let element = self.browser.find(css).await?;
            self.browser.click(&element).await.map(Some)
        })
        .await
    }

    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let input = self.element(css).await?;
        self.browser.clear(&input).await?;
        self.browser.send_keys(&input, text).await?;
        Ok(())
    }

    /// `NN-name.png` in the screenshot directory; checks it is a PNG.
    async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        self.taken.set(self.taken.get() + 1);
        let path = self
            .shots
            .join(format!("{:02}-{name}.png", self.taken.get()));
        let png = self.browser.save_screenshot(&path).await?;
        ensure!(
            png.len() > PNG_SIGNATURE.len() && png.starts_with(PNG_SIGNATURE),
            "{} is not a PNG ({} bytes)",
            path.display(),
            png.len()
        );
        let written = std::fs::read(&path)?;
        ensure!(written == png, "{} was not written whole", path.display());
        Ok(path)
    }

    /// What a failure leaves behind: a screenshot and the page's source.
    /// Returns the current URL for the panic message.
    async fn keep_failure(&self) -> String {
        let url = self
            .browser
            .current_url()
            .await
            .unwrap_or_else(|e| format!("(unknown: {e})"));
        let stamp = self.taken.get();
        let picture = self.shots.join(format!("failure-{stamp:02}.png"));
        if let Err(e) = self.browser.save_screenshot(&picture).await {
            eprintln!("no failure screenshot: {e}");
        }
        match self.browser.source().await {
            Ok(html) => {
                let _ = std::fs::write(self.shots.join(format!("failure-{stamp:02}.html")), html);
            }
            Err(e) => eprintln!("no failure page source: {e}"),
        }
        url
    }

    /// The browser's cookies as a `Cookie` header, for requests made
    /// outside the browser with its session.
    /// A GET with the browser's cookies (a download the browser would
    /// save): status, content type and body.
    async fn fetch(&self, path: &str) -> anyhow::Result<(reqwest::StatusCode, String, Vec<u8>)> {
        let cookies = self.cookie_header().await?;
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?
            .get(self.url(path))
            .header(reqwest::header::COOKIE, cookies)
            .send()
            .await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((status, content_type, response.bytes().await?.to_vec()))
    }

    async fn cookie_header(&self) -> anyhow::Result<String> {
        let cookies = self.browser.cookies().await?;
        for cookie in &cookies {
            println!(
                "cookie {}: domain {:?}, path {:?}, secure {}, httpOnly {}, sameSite {:?}",
                cookie.name,
                cookie.domain,
                cookie.path,
                cookie.secure,
                cookie.http_only,
                cookie.same_site
            );
        }
        let names: Vec<&str> = cookies.iter().map(|c| c.name.as_str()).collect();
        ensure!(
            names.contains(&"mf_session") && names.contains(&"mf_csrf"),
            "the browser holds no console session: cookies {names:?}"
        );
        Ok(cookies
            .iter()
            .filter(|c| c.name.starts_with("mf_"))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// All the text inside an element, shown or not (a table scrolled
/// sideways, a closed `<details>`), as the DOM has it.
async fn text_content(browser: &Browser, element: &Element) -> Result<String, WebDriverError> {
    let value = browser.property(element, "textContent").await?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `/sign-in` with or without a query, and nothing else.
fn on_sign_in(path: &str) -> bool {
    path == "/sign-in" || path.starts_with("/sign-in?")
}

fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The whole flow, step by step. Every failure is an error (not a panic),
/// so the test can keep a screenshot of where it happened.
async fn flow(console: &Console, creds: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let browser = &console.browser;

    // Signed out, the console's root sends the browser to sign in, keeping
    // where it wanted to go.
    println!("step: sign in");
    console.open("/").await?;
    let sign_in = console
        .wait_path("/sign-in?next=…", |p| {
            on_sign_in(p) && p.contains("next=")
        })
        .await?;
    println!("  / redirected to {sign_in}");
    console.element("#username").await?;
    console.screenshot("sign-in").await?;
    console
        .type_into("#username", &creds["tenant_user"])
        .await?;
    console
        .type_into("#password", &creds["tenant_password"])
        .await?;
    let clicking = Instant::now();
    console.click("#sign-in").await?;
    console
        .wait_path("/deployments after signing in", |p| {
            path_only(p) == "/deployments"
        })
        .await?;
    console.cookie_header().await?;

    // The catalog: one card per model, each linking to its plans.
    println!("step: deploy catalog");
    console.open("/deploy").await?;
    let card_css = format!(".card[data-model=\"{MODEL}\"]");
    let card = console.element(&card_css).await?;
    let cards = browser.find_all(".card[data-model]").await?;
    println!("  {} models in the catalog", cards.len());
    console.screenshot("deploy-catalog").await?;
    let link = browser
        .find_in(&card, "a.deploy-model")
        .await
        .with_context(|| format!("{card_css} has no a.deploy-model"))?;
    let href = browser.attribute(&link, "href").await?.unwrap_or_default();
    ensure!(
        path_only(href.strip_prefix(&console.base).unwrap_or(&href)) == format!("/deploy/{MODEL}"),
        "the card links to {href:?}, not /deploy/{MODEL}"
    );
    browser.click(&link).await?;
    console
        .wait_path(&format!("/deploy/{MODEL}"), |p| {
            path_only(p) == format!("/deploy/{MODEL}")
        })
        .await?;

    // The plans, cheapest first, what was rejected and why, and the form.
    println!("step: plans");
    let plans = console
        .wait_for("plan rows in table#plans", READY, async || {
            let rows = browser.find_all("table#plans tbody tr").await?;
            Ok((!rows.is_empty()).then_some(rows))
        })
        .await?;
    let first = browser.text(&plans[0]).await?;
    println!(
        "  {} plans; the first: {}",
        plans.len(),
        first.replace('\n', " | ")
    );
    console
        .element("details #rejections, details#rejections")
        .await?;
    let advanced = console.element("details#advanced").await?;
    println!(
        "  advanced options open: {}",
        browser.property(&advanced, "open").await?
    );
    let name_input = console.element("#deploy-form #deploy-name").await?;
    let name = browser
        .property(&name_input, "value")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(!name.is_empty(), "#deploy-name is not prefilled");
    println!("  the prefilled name: {name}");
    console.screenshot("plans").await?;
    console.click("#deploy-form #deploy-submit").await?;
    let detail = console
        .wait_path("/deployments/<uuid>", |p| {
            path_only(p)
                .strip_prefix("/deployments/")
                .is_some_and(is_uuid)
        })
        .await?;
    let detail = path_only(&detail).to_owned();
    println!("  created {detail}");

    // The page follows the deployment by itself (htmx polling): no reload.
    println!("step: wait for Ready");
    let watched = RefCell::new(Vec::<String>::new());
    console
        .wait_for("#phase Ready", READY, async || {
            let text = browser.text(&browser.find("#phase").await?).await?;
            let text = text.trim().to_owned();
            let mut seen = watched.borrow_mut();
            if seen.last() != Some(&text) {
                seen.push(text.clone());
            }
            Ok((text == "Ready").then_some(()))
        })
        .await
        .with_context(|| format!("phases seen: {:?}", watched.borrow()))?;
    let took = clicking.elapsed();
    println!("  phases seen: {:?}", watched.borrow());
    println!(
        "deployed in {:.1} s of clicking (sign-in to Ready)",
        took.as_secs_f64()
    );
    let ready = browser
        .text(&browser.find("#ready-replicas").await?)
        .await?;
    let replicas = browser.text(&browser.find("#replicas").await?).await?;
    println!("  ready replicas {ready} of {replicas}");
    console.screenshot("deployment-ready").await?;

    // Scale to two, through the confirmation page.
    println!("step: scale to 2");
    console.type_into("#scale-replicas", "2").await?;
    console.click("#scale-submit").await?;
    console.element("#confirm").await?;
    console.click("#confirm").await?;
    console
        .wait_path(&detail, |p| path_only(p) == detail)
        .await?;
    console
        .wait_text("#replicas", "is 2", READY, |t| t == "2")
        .await?;

    // Billing: the deployment's usage, once a sync pass has counted it.
    println!("step: billing");
    console.open("/billing").await?;
    let deadline = Instant::now() + USAGE;
    loop {
        let usage = match browser.find("#usage-by-deployment").await {
            Ok(element) => text_content(browser, &element).await?,
            Err(e) if e.is("no such element") => String::new(),
            Err(e) => return Err(e.into()),
        };
        if usage.contains(&name) {
            break;
        }
        if Instant::now() >= deadline {
            let usage = usage.split_whitespace().collect::<Vec<_>>().join(" ");
            bail!("#usage-by-deployment never mentioned {name} in {USAGE:?}: {usage:?}");
        }
        tokio::time::sleep(POLL).await;
        browser.refresh().await?;
    }
    let total = console.element("#month-total").await?;
    println!("  month total: {}", browser.text(&total).await?.trim());
    console.screenshot("billing").await?;

    // Audit: the search by name finds the deployment's records.
    println!("step: audit");
    console
        .open(&format!("/audit?name={}", query_escape(&name)))
        .await?;
    let rows = console
        .wait_for("audit records naming the deployment", READY, async || {
            let mut mentioning = Vec::new();
            for row in browser.find_all("#audit-records tbody tr").await? {
                let text = text_content(browser, &row).await?;
                if text.contains(&name) {
                    mentioning.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
            Ok((!mentioning.is_empty()).then_some(mentioning))
        })
        .await?;
    println!("  {} records:", rows.len());
    for row in &rows {
        println!("    {row}");
    }
    console.screenshot("audit").await?;

    // The compliance report is platform-wide: a tenant's admin is not
    // offered it, and may not fetch it.
    println!("step: compliance (tenant)");
    let in_nav = !browser
        .find_all("header nav a[href=\"/compliance\"]")
        .await?
        .is_empty();
    ensure!(
        !in_nav,
        "the navigation offers the compliance report to a tenant admin"
    );
    let (status, _, _) = console.fetch("/compliance/report.pdf").await?;
    ensure!(
        status == reqwest::StatusCode::FORBIDDEN,
        "a tenant admin fetched the compliance report: {status}"
    );

    // Chinese and back, staying on the page.
    println!("step: language");
    console.open("/billing").await?;
    console.element("#month-total").await?;
    console.click("#lang-zh").await?;
    console
        .wait_text("header nav", "in Chinese", READY, |t| t.contains("部署"))
        .await?;
    console
        .wait_path("/billing in Chinese", |p| path_only(p) == "/billing")
        .await?;
    console.screenshot("chinese").await?;
    console.click("#lang-en").await?;
    console
        .wait_text("header nav", "in English", READY, |t| {
            t.contains("Deployments") && !t.contains("部署")
        })
        .await?;
    console
        .wait_path("/billing in English", |p| path_only(p) == "/billing")
        .await?;

    // Delete, through the confirmation page.
    println!("step: delete");
    console.open(&detail).await?;
    console.click("#delete").await?;
    console.element("#confirm").await?;
    console.click("#confirm").await?;
    console
        .wait_path("/deployments", |p| path_only(p) == "/deployments")
        .await?;

    // The tenant admin runs their team: adds a person, then disables them.
    println!("step: team");
    console.click("header nav a[href=\"/team\"]").await?;
    console.element("#members").await?;
    console.type_into("#member-username", "dana").await?;
    console
        .type_into("#member-password", "Correct-horse-2024!")
        .await?;
    console.click("#member-create").await?;
    console.element("tr[data-user=\"dana\"]").await?;
    console
        .click("tr[data-user=\"dana\"] button.disable")
        .await?;
    console.element("tr[data-user=\"dana\"] .disabled").await?;
    console.screenshot("team").await?;

    // Signing out ends the session: the console asks to sign in again.
    println!("step: sign out");
    console.click("#sign-out").await?;
    console
        .wait_path("/sign-in after signing out", on_sign_in)
        .await?;
    console.open("/deployments").await?;
    console
        .wait_path("/sign-in when signed out", on_sign_in)
        .await?;

    // The platform admin of the first start must choose their own password
    // and set up a second factor before anything else, then downloads the
    // compliance report.
    println!("step: platform admin chooses a password");
    console.type_into("#username", &creds["admin_user"]).await?;
    console
        .type_into("#password", &creds["admin_password"])
        .await?;
    console.click("#sign-in").await?;
    console
        .wait_path("/account/password (a new password is required)", |p| {
            path_only(p) == "/account/password"
        })
        .await?;
    console.element("#password-required").await?;
    console
        .type_into("#current-password", &creds["admin_password"])
        .await?;
    console
        .type_into("#new-password", "Platform-own-choice-2026")
        .await?;
    console
        .type_into("#repeat-password", "Platform-own-choice-2026")
        .await?;
    console.click("#password-change").await?;
    println!("step: platform admin enrols a second factor");
    console
        .wait_path("/account/totp (enrolment is required)", |p| {
            path_only(p) == "/account/totp"
        })
        .await?;
    console.element("#totp-required").await?;
    console.click("#totp-start").await?;
    let secret = console.element("#totp-secret").await?;
    let secret = browser.text(&secret).await?;
    console.screenshot("second-factor").await?;
    let raw = modelfleet_api::identity::totp::from_base32(secret.trim())
        .context("#totp-secret is not base32")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let code = modelfleet_api::identity::totp::code_at(&raw, i64::try_from(now)?);
    console.type_into("#code", &code).await?;
    console.click("#totp-confirm").await?;
    console
        .wait_path("/deployments once enrolled", |p| {
            path_only(p) == "/deployments"
        })
        .await?;

    println!("step: compliance");
    console.click("header nav a[href=\"/compliance\"]").await?;
    console.element("#compliance-items").await?;
    console.screenshot("compliance").await?;
    let link = console.element("#compliance-pdf").await?;
    let href = browser.attribute(&link, "href").await?.unwrap_or_default();
    ensure!(
        href.strip_prefix(&console.base).unwrap_or(&href) == "/compliance/report.pdf",
        "#compliance-pdf links to {href:?}"
    );
    let (status, content_type, body) = console.fetch("/compliance/report.pdf").await?;
    println!(
        "  GET /compliance/report.pdf: {status}, {content_type:?}, {} bytes",
        body.len()
    );
    ensure!(
        status == reqwest::StatusCode::OK
            && content_type.starts_with("application/pdf")
            && body.starts_with(b"%PDF-"),
        "the compliance PDF is {status} {content_type:?}"
    );

    println!("step: admin");
    console.open("/admin/clusters").await?;
    console.element("main h1").await?;
    console.screenshot("admin-clusters").await?;
    console.click("#sign-out").await?;
    console
        .wait_path("/sign-in after the admin signs out", on_sign_in)
        .await?;
    Ok(())
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for screenshots");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deploys_a_70b_model_by_clicking_through_the_console() {
    let shots = screenshot_dir();
    println!("screenshots: {}", shots.display());
    let data = tempfile::tempdir().unwrap();
    let hub = serve::start(data.path()).await;
    let creds = serve::credentials(data.path());
    for key in ["tenant_user", "tenant_password"] {
        assert!(creds.contains_key(key), "no {key} in the credentials file");
    }

    let browser = Browser::start(Some(&shots.join("chromedriver.log"))).await;
    let console = Console {
        browser,
        base: hub.url.trim_end_matches('/').to_owned(),
        shots: shots.clone(),
        taken: Cell::new(0),
    };
    let outcome = flow(&console, &creds).await;
    if let Err(error) = outcome {
        let url = console.keep_failure().await;
        panic!(
            "the console flow failed at {url}: {error:#}\n(screenshot and page source: {}/failure-*)",
            shots.display()
        );
    }

    let mut pictures: Vec<_> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "png"))
        .collect();
    pictures.sort();
    for picture in &pictures {
        let png = std::fs::read(picture).unwrap();
        assert!(
            png.len() > PNG_SIGNATURE.len() && png.starts_with(PNG_SIGNATURE),
            "{} is not a PNG",
            picture.display()
        );
    }
    assert_eq!(pictures.len(), 11, "{pictures:?}");
    println!("{} screenshots in {}", pictures.len(), shots.display());

    console.browser.quit().await.expect("the browser closes");
    hub.shutdown().await;
}
