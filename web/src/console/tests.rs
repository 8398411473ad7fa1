//! The console's text tables, checked against what each page uses: every
//! key a page module or one of its templates asks for must be in the table
//! that page looks in (its own, then the layout's), in both languages.
//! Keys are found by reading the sources and templates as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::i18n::{Lang, Table};
use super::page::{self, Chrome};
use super::{admin, audit, billing, compliance, credentials, deploy, deployments, session};

/// Every text table, by the page module that owns it.
const TABLES: &[(&str, Table)] = &[
    ("page", page::TEXT),
    ("session", session::TEXT),
    ("deploy", deploy::TEXT),
    ("deployments", deployments::TEXT),
    ("billing", billing::TEXT),
    ("credentials", credentials::TEXT),
    ("audit", audit::TEXT),
    ("compliance", compliance::TEXT),
    ("admin", admin::TEXT),
];

/// The table a source file's `TEXT` names, by its path under
/// `src/console`; `None` for files that show no text.
fn own_table(file: &str) -> Option<Table> {
    let owner = match file {
        // The layout and error pages, and what answers with them.
        "page.rs" | "csrf.rs" | "mod.rs" => "page",
        "i18n.rs" | "tests.rs" | "cookie.rs" | "chart.rs" => return None,
        // The deploy page for a model named by its source.
        "deploy_source.rs" => "deploy",
        // The deployment's logs page, its "Try it" box, its traffic.
        "deployment_logs.rs" | "try_it.rs" | "deployment_traffic.rs" => "deployments",
        // The source credentials page and its text.
        "credentials/mod.rs" | "credentials/form.rs" | "credentials/text.rs" => "credentials",
        f => f.split('/').next().unwrap_or(f).trim_end_matches(".rs"),
    };
    let table = TABLES.iter().find(|(name, _)| *name == owner);
    Some(
        table
            .unwrap_or_else(|| panic!("{file}: no text table; add its page's to TABLES"))
            .1,
    )
}

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The quoted strings that follow each `marker` in `text`.
fn quoted_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// `t(TABLE, "key")` calls in Rust: `(TABLE, key)`.
fn rust_lookups(text: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices(".t(") {
        let args = &text[i + 3..];
        let Some((table, rest)) = args.split_once(',') else {
            continue;
        };
        let table = table.trim();
        let rest = rest.trim_start();
        if table.ends_with("TEXT") && rest.starts_with('"') {
            let key = &rest[1..];
            found.push((table, &key[..key.find('"').unwrap()]));
        }
    }
    found
}

/// A template and every template it includes or extends.
fn with_parts(template: &str, seen: &mut BTreeSet<String>) {
    if !seen.insert(template.to_owned()) {
        return;
    }
    let text = std::fs::read_to_string(web_dir().join("templates").join(template))
        .unwrap_or_else(|e| panic!("template {template}: {e}"));
    for part in quoted_after(&text, "{% include \"")
        .into_iter()
        .chain(quoted_after(&text, "{% extends \""))
    {
        with_parts(part, seen);
    }
}

fn missing_in(tables: &[Table], key: &str) -> bool {
    !tables
        .iter()
        .any(|table| table.iter().any(|(k, _, _)| *k == key))
}

#[test]
fn every_page_finds_its_text_in_its_own_table_or_the_layouts() {
    let src = web_dir().join("src/console");
    let mut used = BTreeSet::new();
    let mut missing = BTreeMap::<String, Vec<String>>::new();
    let mut rendered = BTreeSet::new();
    for path in files_under(&src) {
        let file = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let own = own_table(&file);
        let mut check = |tables: &[Table], key: &str, place: &str| {
            used.insert(key.to_owned());
            if missing_in(tables, key) {
                missing
                    .entry(place.to_owned())
                    .or_default()
                    .push(key.to_owned());
            }
        };
        if file != "i18n.rs" && file != "tests.rs" {
            for (table, key) in rust_lookups(&text) {
                let table = match table {
                    "TEXT" => own.unwrap_or_else(|| panic!("{file}: `TEXT` names no table")),
                    "page::TEXT" | "super::page::TEXT" => page::TEXT,
                    other => panic!("{file}: unknown text table {other}"),
                };
                check(&[table], key, &file);
            }
            // A `Chrome`'s `t`, called from Rust.
            for key in quoted_after(&text, ".t(\"") {
                let own = own.unwrap_or_else(|| panic!("{file}: shows text but has no table"));
                check(&[own, page::TEXT], key, &file);
            }
        }
        let mut templates = BTreeSet::new();
        for template in quoted_after(&text, "#[template(path = \"") {
            with_parts(template, &mut templates);
        }
        for template in templates {
            let own = own.unwrap_or_else(|| panic!("{file} renders {template} but has no text"));
            let text =
                std::fs::read_to_string(web_dir().join("templates").join(&template)).unwrap();
            for key in quoted_after(&text, ".t(\"") {
                check(&[own, page::TEXT], key, &format!("{file} → {template}"));
            }
            rendered.insert(template);
        }
    }
    assert!(used.len() > 40, "found only {} keys", used.len());
    assert!(
        missing.is_empty(),
        "keys a page uses without text: {missing:#?}"
    );
    let templates: BTreeSet<String> = files_under(&web_dir().join("templates/console"))
        .iter()
        .map(|p| {
            let p = p.strip_prefix(web_dir().join("templates")).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let unrendered: Vec<_> = templates.difference(&rendered).collect();
    assert!(
        unrendered.is_empty(),
        "templates no page renders: {unrendered:?}"
    );
}

#[test]
fn every_text_is_in_english_and_chinese() {
    for (owner, table) in TABLES {
        for (key, en, zh) in *table {
            assert!(
                !en.is_empty() && !zh.is_empty(),
                "{owner}: {key} lacks a text"
            );
        }
    }
}

#[test]
fn no_key_is_defined_twice() {
    let mut seen = BTreeMap::new();
    for (owner, table) in TABLES {
        for (key, _, _) in *table {
            if let Some(first) = seen.insert(*key, *owner) {
                panic!("{key} is in the tables of {first} and {owner}");
            }
        }
    }
}

#[test]
fn a_page_speaks_its_own_text_and_the_layouts_in_the_viewers_language() {
    assert_eq!(Lang::Zh.t(page::TEXT, "nav.billing"), "账单");
    let c = Chrome::anonymous(Lang::Zh, String::new(), deploy::TEXT);
    assert_eq!(c.t("deploy.title"), "部署模型");
    assert_eq!(c.t("nav.billing"), "账单");
    let c = Chrome::anonymous(Lang::En, String::new(), deploy::TEXT);
    assert_eq!(c.t("deploy.title"), "Deploy a model");
    assert_eq!(
        c.t("sign_in.title"),
        "(missing text)",
        "another page's text"
    );
}

/// The console goes through the hub's service layer (`Hub`'s operations,
/// reached with `state.hub()`): never an HTTP handler, the store or the
/// cluster registry, so every rule, check and audit record is the one the
/// REST API has too. Two API representations are shared on purpose: the
/// deployment pages' JSON (polled by their script) is the REST API's
/// `DeploymentView`, and the deploy page shows the API's `PlanReportView`.
#[test]
fn no_page_reaches_past_the_service_layer() {
    let shared_views = [
        "use modelfleet_api::http::v1::deployments::DeploymentView;",
        "use modelfleet_api::http::v1::plans::PlanReportView;",
    ];
    let forbidden = [
        ("http::v1::", "an HTTP handler module"),
        (".store()", "the store"),
        ("store::Store", "the store"),
        (".registry()", "the cluster registry"),
        ("ClusterRegistry", "the cluster registry"),
    ];
    let mut found = Vec::new();
    for file in files_under(&web_dir().join("src/console")) {
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") || shared_views.contains(&line.trim()) {
                continue;
            }
            for (needle, what) in forbidden {
                if line.contains(needle) {
                    found.push(format!(
                        "{}:{}: {what}: {}",
                        file.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "console code reaching past Hub:\n{}",
        found.join("\n")
    );
}
