//! "Try it" in a real browser, under the console's Content-Security-Policy:
//! `modelfleet serve` started in process, headless Chromium over WebDriver.
//! The demo tenant admin deploys a small model, waits for Ready, types a
//! message and sees the answer streamed into the page by `static/try.js`
//! (were the script blocked, the form would post natively and the browser
//! would leave the page), then the traffic figures count the call without
//! a reload, and an empty message is refused on the page.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`, as
//! `console_browser.rs` does. A failure keeps a screenshot and the page's
//! source in `$CARGO_TARGET_TMPDIR/console-try-screenshots/`.

#[path = "support/serve.rs"]
mod serve;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use webdriver::{Browser, WebDriverError};

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);
const MODEL: &str = "llama-3.2-1b";

struct Console {
    browser: Browser,
    base: String,
}

impl Console {
    async fn open(&self, path: &str) -> anyhow::Result<()> {
        self.browser.goto(&format!("{}{path}", self.base)).await?;
        Ok(())
    }

    async fn path(&self) -> anyhow::Result<String> {
        let url = self.browser.current_url().await?;
        Ok(url.strip_prefix(&self.base).unwrap_or(&url).to_owned())
    }

    /// Checks `probe` every [`POLL`] until it finds something, for at most
    /// `timeout`; WebDriver errors (not there yet, swapped out by htmx)
    /// count as "not yet".
    async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl AsyncFnMut() -> Result<Option<T>, WebDriverError>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            match probe().await {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                Err(e) => last = Some(e),
            }
            if Instant::now() >= deadline {
                let path = self.path().await.unwrap_or_default();
                bail!("{what}: not after {timeout:?} on {path}; last error: {last:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the text of `css` satisfies `want`; returns it.
    async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut seen = String::new();
        self.wait_for(&format!("the text of {css}"), timeout, async || {
            let text = self.browser.text(&self.browser.find(css).await?).await?;
            seen = text.trim().to_owned();
            Ok(want(&seen).then(|| seen.clone()))
        })
        .await
        .with_context(|| format!("{css} said {seen:?}"))
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.wait_for(&format!("clicking {css}"), WAIT, async || {
            let element = self.browser.find(css).await?;
            self.browser.click(&element).await.map(Some)
        })
        .await
    }

    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let input = self
            .wait_for(&format!("{css} to type into"), WAIT, async || {
                self.browser.find(css).await.map(Some)
            })
            .await?;
        self.browser.clear(&input).await?;
        self.browser.send_keys(&input, text).await?;
        Ok(())
    }
}

fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

async fn flow(console: &Console, user: &str, password: &str) -> anyhow::Result<()> {
    let browser = &console.browser;
    console.open("/sign-in").await?;
    console.type_into("#username", user).await?;
    console.type_into("#password", password).await?;
    console.click("#sign-in").await?;
    console
        .wait_for("/deployments after signing in", WAIT, async || {
            let url = browser.current_url().await?;
            let path = url.strip_prefix(&console.base).unwrap_or(&url);
            Ok((path_only(path) == "/deployments").then_some(()))
        })
        .await?;

    println!("step: deploy {MODEL}");
    console.open(&format!("/deploy/{MODEL}")).await?;
    console.click("#deploy-form #deploy-submit").await?;
    let detail = console
        .wait_for("the deployment's page", WAIT, async || {
            let url = browser.current_url().await?;
            let path = url.strip_prefix(&console.base).unwrap_or(&url).to_owned();
            let page = path_only(&path).to_owned();
            Ok(
                (page.starts_with("/deployments/") && page.len() == "/deployments/".len() + 36)
                    .then_some(page),
            )
        })
        .await?;
    println!("  {detail}");
    console.wait_text("#phase", WAIT, |t| t == "Ready").await?;
    // Ready with the page still polling may not have the box yet: load it.
    console.open(&detail).await?;
    console
        .wait_text("#traffic-requests", WAIT, |t| t == "0")
        .await?;

    println!("step: try it");
    console
        .type_into("#try-message", "Tell me about the sandbox.")
        .await?;
    console.click("#try-send").await?;
    let answer = console
        .wait_for("a whole answer in #try-answer", WAIT, async || {
            let element = browser.find("#try-answer").await?;
            let state = browser.attribute(&element, "data-state").await?;
            let text = browser.text(&element).await?;
            match state.as_deref() {
                Some("done") if !text.trim().is_empty() => Ok(Some(Ok(text))),
                Some("error") => {
                    let error = browser.text(&browser.find("#try-error").await?).await?;
                    Ok(Some(Err(error)))
                }
                _ => Ok(None),
            }
        })
        .await?;
    let answer = match answer {
        Ok(text) => text,
        Err(error) => bail!("the page shows an error instead of an answer: {error}"),
    };
    println!("  answer: {answer}");
    if answer.contains("data:") || answer.contains("choices") {
        bail!("the page shows the raw stream, not its text: {answer}");
    }
    if path_only(&console.path().await?) != detail {
        bail!("the browser left the page: the script did not handle the form");
    }
    let usage = console
        .wait_text("#try-usage", WAIT, |t| t.contains("tokens in"))
        .await?;
    println!("  usage: {usage}");

    println!("step: the figures count it, without a reload");
    console
        .wait_text("#traffic-requests", Duration::from_secs(30), |t| t == "1")
        .await?;
    let output = browser
        .text(&browser.find("#traffic-output-tokens").await?)
        .await?;
    if output.trim() == "0" {
        bail!("no output tokens counted");
    }

    println!("step: an empty message is refused on the page");
    console.type_into("#try-message", "   ").await?;
    console.click("#try-send").await?;
    console
        .wait_text("#try-error", WAIT, |t| {
            t.starts_with("Write a message first")
        })
        .await?;
    Ok(())
}

fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-try-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for screenshots");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_it_streams_an_answer_into_the_page_under_the_csp() {
    let shots = shots();
    let data = tempfile::tempdir().unwrap();
    let hub = serve::start(data.path()).await;
    let creds = serve::credentials(data.path());
    let browser = Browser::start(Some(&shots.join("chromedriver.log"))).await;
    let console = Console {
        browser,
        base: hub.url.trim_end_matches('/').to_owned(),
    };
    let outcome = flow(&console, &creds["tenant_user"], &creds["tenant_password"]).await;
    if let Err(error) = outcome {
        let url = console.browser.current_url().await.unwrap_or_default();
        let _ = console
            .browser
            .save_screenshot(&shots.join("failure.png"))
            .await;
        if let Ok(html) = console.browser.source().await {
            let _ = std::fs::write(shots.join("failure.html"), html);
        }
        panic!(
            "Try it failed at {url}: {error:#}\n(screenshot and page source in {})",
            shots.display()
        );
    }
    console
        .browser
        .save_screenshot(&shots.join("try-it.png"))
        .await
        .expect("a screenshot");
    console.browser.quit().await.expect("the browser closes");
    hub.shutdown().await;
}
