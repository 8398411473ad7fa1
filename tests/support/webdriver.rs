//! A small W3C WebDriver client for the console's browser test: headless
//! Chromium driven by `chromedriver` over plain HTTP on loopback, with the
//! `reqwest` client the other end-to-end tests already use (no TLS stack
//! beyond the workspace's, no WebDriver crate).
//!
//! [`Browser::start`] starts `chromedriver` on a free port as a child
//! process, waits until its `/status` says ready, and opens one session on
//! a fresh, throwaway Chromium profile. Dropping the [`Browser`] closes the
//! session (so Chromium exits) and kills `chromedriver`.

#![allow(dead_code)]

use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Where Debian's `chromium` and `chromium-driver` packages put them;
/// `MODELFLEET_CHROMIUM` and `MODELFLEET_CHROMEDRIVER` override.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key W3C WebDriver names an element reference with.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long `chromedriver` may take to say it is ready.
const DRIVER_READY: Duration = Duration::from_secs(30);

/// A WebDriver command that failed: the W3C error code (`no such
/// element`, `stale element reference`, …) and the driver's message.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub command: String,
    pub error: String,
    pub message: String,
}

impl WebDriverError {
    pub fn is(&self, error: &str) -> bool {
        self.error == error
    }
}

impl fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The driver's message can carry a whole stack; its first line says it.
        let message = self.message.lines().next().unwrap_or_default();
        write!(f, "WebDriver {}: {}: {message}", self.command, self.error)
    }
}

impl std::error::Error for WebDriverError {}

pub type Result<T> = std::result::Result<T, WebDriverError>;

/// One cookie as the browser holds it.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
}

/// An element found on the current page.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Headless Chromium under `chromedriver`, one session.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    driver: Child,
    driver_addr: SocketAddr,
    /// `http://127.0.0.1:<port>/session/<id>`
    session_url: String,
    session_id: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session. Panics, naming
    /// the Debian packages to install, when either binary is missing: the
    /// test must fail rather than quietly skip.
    pub async fn start(driver_log: Option<&Path>) -> Browser {
        let chromium = binary("MODELFLEET_CHROMIUM", CHROMIUM);
        let chromedriver = binary("MODELFLEET_CHROMEDRIVER", CHROMEDRIVER);
        for path in [&chromium, &chromedriver] {
            assert!(
                path.exists(),
                "{} is missing: the console's browser test needs headless Chromium; \
                 install the Debian packages `chromium chromium-driver` \
                 (apt-get install chromium chromium-driver; CI installs them)",
                path.display()
            );
        }

        let port = free_port();
        let driver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(log) = driver_log {
            command.arg(format!("--log-path={}", log.display()));
        }
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let profile = tempfile::Builder::new()
            .prefix("modelfleet-chromium-")
            .tempdir()
            .expect("a temporary Chromium profile");
        let mut browser = Browser {
            http,
            driver,
            driver_addr,
            session_url: String::new(),
            session_id: None,
            _profile: profile,
        };
        browser.wait_until_ready().await;
        browser.new_session(&chromium).await;
        browser
    }

    fn driver_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.driver_addr)
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Some(status) = self.driver.try_wait().expect("chromedriver's status") {
                panic!("chromedriver exited before it was ready: {status}");
            }
            let answer = self.http.get(self.driver_url("/status")).send().await;
            if let Ok(response) = answer
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver on {} not ready after {DRIVER_READY:?}",
                self.driver_addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn new_session(&mut self, chromium: &Path) {
        let profile = self._profile.path().display().to_string();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1366,900".to_owned(),
            format!("--user-data-dir={profile}"),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": args,
                    },
                },
            },
        });
        let answer = self
            .send(
                "new session",
                reqwest::Method::POST,
                self.driver_url("/session"),
                Some(capabilities),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot start headless Chromium: {e}"));
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a new session without an id: {answer}"))
            .to_owned();
        self.session_url = self.driver_url(&format!("/session/{id}"));
        self.session_id = Some(id);
    }

    /// One WebDriver command; its `value`, or the W3C error it answered.
    async fn send(
        &self,
        command: &str,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> Result<Value> {
        let failed = |error: &str, message: String| WebDriverError {
            command: command.to_owned(),
            error: error.to_owned(),
            message,
        };
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| failed("no answer from chromedriver", e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| failed("unreadable answer from chromedriver", e.to_string()))?;
        let mut body: Value =
            serde_json::from_str(&text).map_err(|e| failed("not JSON", format!("{e}: {text}")))?;
        let value = body["value"].take();
        if status.is_success() {
            return Ok(value);
        }
        Err(failed(
            value["error"].as_str().unwrap_or("unknown error"),
            value["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}: {text}"), str::to_owned),
        ))
    }

    async fn session_command(
        &self,
        command: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.session_url);
        self.send(command, method, url, body).await
    }

    async fn get(&self, command: &str, path: &str) -> Result<Value> {
        self.session_command(command, reqwest::Method::GET, path, None)
            .await
    }

    async fn post(&self, command: &str, path: &str, body: Value) -> Result<Value> {
        self.session_command(command, reqwest::Method::POST, path, Some(body))
            .await
    }

    fn string(command: &str, value: Value) -> Result<String> {
        match value {
            Value::String(text) => Ok(text),
            other => Err(WebDriverError {
                command: command.to_owned(),
                error: "unexpected answer".to_owned(),
                message: format!("expected a string, got {other}"),
            }),
        }
    }

    /// Loads `url` and waits for the page's load event.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post(&format!("navigate to {url}"), "/url", json!({ "url": url }))
            .await
            .map(drop)
    }

    pub async fn current_url(&self) -> Result<String> {
        let value = self.get("current URL", "/url").await?;
        Self::string("current URL", value)
    }

    pub async fn title(&self) -> Result<String> {
        let value = self.get("title", "/title").await?;
        Self::string("title", value)
    }

    pub async fn refresh(&self) -> Result<()> {
        self.post("refresh", "/refresh", json!({})).await.map(drop)
    }

    pub async fn source(&self) -> Result<String> {
        let value = self.get("page source", "/source").await?;
        Self::string("page source", value)
    }

    fn element_of(command: &str, value: &Value) -> Result<Element> {
        value[ELEMENT_KEY]
            .as_str()
            .map(|id| Element { id: id.to_owned() })
            .ok_or_else(|| WebDriverError {
                command: command.to_owned(),
                error: "unexpected answer".to_owned(),
                message: format!("not an element reference: {value}"),
            })
    }

    /// The first element `css` matches; `no such element` when none does.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let command = format!("find {css}");
        let value = self
            .post(
                &command,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await?;
        Self::element_of(&command, &value)
    }

    /// Every element `css` matches, in document order (maybe none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let command = format!("find all {css}");
        let value = self
            .post(
                &command,
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await?;
        value
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|v| Self::element_of(&command, v))
            .collect()
    }

    /// The first element `css` matches inside `parent`.
    pub async fn find_in(&self, parent: &Element, css: &str) -> Result<Element> {
        let command = format!("find {css} in an element");
        let value = self
            .post(
                &command,
                &format!("/element/{}/element", parent.id),
                json!({ "using": "css selector", "value": css }),
            )
            .await?;
        Self::element_of(&command, &value)
    }

    pub async fn click(&self, element: &Element) -> Result<()> {
        self.post(
            "click",
            &format!("/element/{}/click", element.id),
            json!({}),
        )
        .await
        .map(drop)
    }

    pub async fn clear(&self, element: &Element) -> Result<()> {
        self.post(
            "clear",
            &format!("/element/{}/clear", element.id),
            json!({}),
        )
        .await
        .map(drop)
    }

    pub async fn send_keys(&self, element: &Element, text: &str) -> Result<()> {
        self.post(
            "send keys",
            &format!("/element/{}/value", element.id),
            json!({ "text": text }),
        )
        .await
        .map(drop)
    }

    /// The element's rendered text, as a reader sees it.
    pub async fn text(&self, element: &Element) -> Result<String> {
        let value = self
            .get("element text", &format!("/element/{}/text", element.id))
            .await?;
        Self::string("element text", value)
    }

    /// An attribute as written in the HTML; `None` when it is absent.
    pub async fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        let value = self
            .get(
                &format!("attribute {name}"),
                &format!("/element/{}/attribute/{name}", element.id),
            )
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// A DOM property (`value` of an input, `open` of a `<details>`, …).
    pub async fn property(&self, element: &Element, name: &str) -> Result<Value> {
        self.get(
            &format!("property {name}"),
            &format!("/element/{}/property/{name}", element.id),
        )
        .await
    }

    pub async fn cookies(&self) -> Result<Vec<Cookie>> {
        let value = self.get("cookies", "/cookie").await?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Ok(value
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|c| Cookie {
                name: text(&c["name"]).unwrap_or_default(),
                value: text(&c["value"]).unwrap_or_default(),
                domain: text(&c["domain"]),
                path: text(&c["path"]),
                secure: c["secure"].as_bool().unwrap_or(false),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                same_site: text(&c["sameSite"]),
            })
            .collect())
    }

    /// The viewport as PNG bytes.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self.get("screenshot", "/screenshot").await?;
        let encoded = Self::string("screenshot", value)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| WebDriverError {
                command: "screenshot".to_owned(),
                error: "not base64".to_owned(),
                message: e.to_string(),
            })
    }

    /// Saves the viewport as a PNG file and returns its bytes.
    pub async fn save_screenshot(&self, path: &Path) -> Result<Vec<u8>> {
        let png = self.screenshot().await?;
        std::fs::write(path, &png).map_err(|e| WebDriverError {
            command: "screenshot".to_owned(),
            error: "cannot write the file".to_owned(),
            message: format!("{}: {e}", path.display()),
        })?;
        Ok(png)
    }

    /// Closes the session: Chromium exits.
    pub async fn quit(mut self) -> Result<()> {
        let Some(_) = self.session_id.take() else {
            return Ok(());
        };
        self.send(
            "delete session",
            reqwest::Method::DELETE,
            self.session_url.clone(),
            None,
        )
        .await
        .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never reached `quit`: close the session with
        // a plain blocking request (no runtime in `drop`), so Chromium does
        // not outlive chromedriver, then end chromedriver.
        if let Some(id) = self.session_id.take() {
            let _ = delete_session_blocking(self.driver_addr, &id);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn delete_session_blocking(addr: SocketAddr, id: &str) -> std::io::Result<usize> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "DELETE /session/{id} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers once the session (and Chromium) is gone; the
    // first bytes of its answer are all that is waited for.
    let mut answer = [0u8; 512];
    stream.read(&mut answer)
}
