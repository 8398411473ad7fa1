//! The compliance report rendered as HTML and as PDF, checked from the
//! outside: the HTML as text, the PDF through poppler's `pdftotext` and
//! `pdfinfo` (Debian package poppler-utils), as a reader would see it.

use std::path::Path;
use std::process::Command;

use modelfleet_web::report::{
    FontSource, ItemStatus, ReportDocument, ReportError, ReportItem, render_html, render_pdf,
};

const DROID: &str = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf";
const DEJAVU: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Requirements of GB/T 22239-2019 level 3, cycled to make long reports.
const REQUIREMENTS: &[(&str, &str)] = &[
    (
        "应对登录的用户进行身份标识和鉴别，身份标识具有唯一性，身份鉴别信息具有复杂度要求并定期更换",
        "Users who log in shall be identified and authenticated; identities shall be unique and \
         credentials shall be complex and changed regularly",
    ),
    (
        "应采用口令、密码技术、生物技术等两种或两种以上组合的鉴别技术对用户进行身份鉴别，且其中一种鉴别技术至少应使用密码技术来实现",
        "Users shall be authenticated with a combination of two or more techniques such as \
         passwords, cryptography and biometrics, at least one of which uses cryptography",
    ),
    (
        "应启用安全审计功能，审计覆盖到每个用户，对重要的用户行为和重要安全事件进行审计",
        "Security auditing shall be enabled, cover every user, and record important user \
         actions and security events",
    ),
    (
        "应采用密码技术保证重要数据在传输过程中的保密性",
        "Cryptography shall protect the confidentiality of important data in transit",
    ),
];

fn item(n: usize) -> ReportItem {
    let (zh, en) = REQUIREMENTS[n % REQUIREMENTS.len()];
    let status = match n % 3 {
        0 => ItemStatus::Pass,
        1 => ItemStatus::Fail,
        _ => ItemStatus::ManualEvidence,
    };
    ReportItem {
        id: format!("L3-CES1-{:02}", n + 1),
        requirement_zh: zh.to_owned(),
        requirement_en: en.to_owned(),
        status,
        evidence: match status {
            ItemStatus::Pass => vec!["all 3 admins have TOTP enrolled".to_owned()],
            ItemStatus::Fail => vec![
                "2 of 3 admins lack TOTP".to_owned(),
                "审计日志保留期为 30 天，少于 180 天".to_owned(),
            ],
            ItemStatus::ManualEvidence => Vec::new(),
        },
    }
}

fn document(items: usize) -> ReportDocument {
    let items: Vec<ReportItem> = (0..items).map(item).collect();
    let count = |status| {
        items
            .iter()
            .filter(|i| i.status == status)
            .count()
            .to_string()
    };
    ReportDocument {
        title_en: "MLPS 2.0 Level 3 Compliance Report".to_owned(),
        title_zh: "等保2.0 三级合规报告".to_owned(),
        generated_at: "2026-11-29 09:12:03 UTC".to_owned(),
        subject: "modelfleet hub at https://hub.example.com".to_owned(),
        summary: vec![
            ("通过 / Passed".to_owned(), count(ItemStatus::Pass)),
            ("不通过 / Failed".to_owned(), count(ItemStatus::Fail)),
            (
                "需人工举证 / Needs manual evidence".to_owned(),
                count(ItemStatus::ManualEvidence),
            ),
        ],
        items,
    }
}

// ---------------------------------------------------------------- HTML

#[test]
fn html_shows_every_item_in_both_languages() {
    let doc = document(6);
    let html = render_html(&doc);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(r#"<html lang="zh-CN">"#));
    assert!(html.contains("等保2.0 三级合规报告"));
    assert!(html.contains("MLPS 2.0 Level 3 Compliance Report"));
    assert!(html.contains("2026-11-29 09:12:03 UTC"));
    for item in &doc.items {
        assert!(html.contains(&item.id), "missing {}", item.id);
        assert!(
            html.contains(&item.requirement_zh),
            "missing zh of {}",
            item.id
        );
        assert!(
            html.contains(&item.requirement_en),
            "missing en of {}",
            item.id
        );
        assert!(html.contains(item.status.label_en()));
        assert!(html.contains(item.status.label_zh()));
        for line in &item.evidence {
            assert!(html.contains(line), "missing evidence {line}");
        }
    }
    for class in ["status-pass", "status-fail", "status-manual"] {
        assert!(html.contains(class), "missing CSS class {class}");
    }
    assert!(!html.contains("<script"), "the page carries no JavaScript");
}

#[test]
fn html_escapes_user_text() {
    let mut doc = document(1);
    doc.subject = "<script>alert('subject')</script>".to_owned();
    doc.items[0].evidence = vec!["<script>alert(\"evidence\")</script> & <b>".to_owned()];
    doc.summary
        .push(("<i>label</i>".to_owned(), "<img src=x>".to_owned()));
    let html = render_html(&doc);
    assert!(!html.contains("<script"), "unescaped script in {html}");
    assert!(!html.contains("<img"), "unescaped summary value in {html}");
    assert!(
        !html.contains("<i>label"),
        "unescaped summary label in {html}"
    );
    // askama writes numeric character references; either form is fine.
    let escaped = |named: &str, numeric: &str| html.contains(named) || html.contains(numeric);
    assert!(escaped("&lt;script&gt;", "&#60;script&#62;"), "{html}");
    assert!(escaped("&amp; &lt;b&gt;", "&#38; &#60;b&#62;"), "{html}");
}

// ---------------------------------------------------------------- PDF

/// Run a poppler tool; fail (never skip) when it is not installed.
fn poppler(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {tool} ({err}): install poppler-utils (apt-get install poppler-utils)"
            )
        });
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|err| panic!("{tool} printed non-UTF-8: {err}"))
}

struct Rendered {
    _dir: tempfile::TempDir,
    /// `pdftotext -layout`: the page as it looks, table rows side by side.
    text: String,
    /// `pdftotext -raw`: content-stream order, so a wrapped table cell's
    /// lines follow each other.
    raw: String,
    pages: usize,
    bytes: usize,
}

fn render_and_extract(doc: &ReportDocument) -> Rendered {
    let pdf = render_pdf(doc, &FontSource::system())
        .expect("render the PDF (needs fonts-droid-fallback and fonts-dejavu-core installed)");
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, &pdf).expect("write the PDF");
    let file = path.to_str().expect("UTF-8 temp path");
    let text = poppler("pdftotext", &["-layout", "-enc", "UTF-8", file, "-"]);
    let raw = poppler("pdftotext", &["-raw", "-enc", "UTF-8", file, "-"]);
    let info = poppler("pdfinfo", &[file]);
    let pages = info
        .lines()
        .find_map(|line| line.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count in pdfinfo output:\n{info}"));
    assert!(!info.contains("Syntax Error"), "{info}");
    Rendered {
        _dir: dir,
        text,
        raw,
        pages,
        bytes: pdf.len(),
    }
}

/// `pdftotext -layout` may put spaces between the characters of Chinese
/// text laid out glyph by glyph; compare without any whitespace.
fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn pdf_text_is_extractable_in_chinese_and_english() {
    let doc = document(6);
    let rendered = render_and_extract(&doc);
    let text = squash(&rendered.text);
    for expected in [
        "等保2.0三级合规报告",
        "MLPS2.0Level3ComplianceReport",
        "2026-11-2909:12:03UTC",
        "modelfleethubathttps://hub.example.com",
        "通过",
        "不通过",
        "需人工举证",
        "2of3adminslackTOTP",
        "应采用口令、密码技术",
    ] {
        assert!(
            text.contains(expected),
            "missing {expected:?} in:\n{}",
            rendered.text
        );
    }
    let raw = squash(&rendered.raw);
    // These wrap inside their table cells.
    for expected in ["needsmanualevidence", "审计日志保留期为30天，少于180天"] {
        assert!(
            raw.contains(expected),
            "missing {expected:?} in:\n{}",
            rendered.raw
        );
    }
    for item in &doc.items {
        assert!(
            rendered.text.contains(&item.id),
            "missing {} in:\n{}",
            item.id,
            rendered.text
        );
        assert!(
            raw.contains(&squash(&item.requirement_zh)),
            "zh of {}:\n{}",
            item.id,
            rendered.raw
        );
        assert!(
            raw.contains(&squash(&item.requirement_en)),
            "en of {}:\n{}",
            item.id,
            rendered.raw
        );
    }
    // Latin words keep their spaces.
    assert!(
        rendered.text.contains("2 of 3 admins lack TOTP"),
        "{}",
        rendered.text
    );
}

#[test]
fn long_pdf_spans_several_numbered_pages() {
    let doc = document(40);
    let rendered = render_and_extract(&doc);
    assert!(rendered.pages > 1, "40 items on {} page(s)", rendered.pages);
    // pdftotext ends every page with a form feed.
    assert_eq!(rendered.text.matches('\x0c').count(), rendered.pages);
    for item in &doc.items {
        assert!(rendered.text.contains(&item.id), "missing {}", item.id);
    }
    let last = format!("page {0} / {0}", rendered.pages);
    assert!(rendered.text.contains(&last), "no {last:?} footer");
    // The fonts are subset: Droid Sans Fallback alone is 4 MB.
    assert!(
        rendered.bytes < 400_000,
        "40-item PDF is {} bytes",
        rendered.bytes
    );
    eprintln!(
        "40-item PDF: {} bytes, {} pages",
        rendered.bytes, rendered.pages
    );
}

#[test]
fn item_taller_than_a_page_is_split_not_lost() {
    let mut doc = document(2);
    doc.items[1].evidence = (1..=120)
        .map(|n| format!("finding number {n} 第{n}条"))
        .collect();
    let rendered = render_and_extract(&doc);
    assert!(rendered.pages >= 3, "{} pages", rendered.pages);
    for n in [1, 60, 120] {
        let line = format!("finding number {n} 第{n}条");
        assert!(
            squash(&rendered.raw).contains(&squash(&line)),
            "missing {line:?}"
        );
    }
}

#[test]
fn pdf_is_deterministic() {
    let doc = document(3);
    let first = render_pdf(&doc, &FontSource::system()).expect("render");
    let second = render_pdf(&doc, &FontSource::system()).expect("render");
    assert!(first == second, "two renders of one document differ");
}

#[test]
fn font_without_chinese_is_rejected_with_advice() {
    assert!(
        Path::new(DEJAVU).exists(),
        "install fonts-dejavu-core for this test"
    );
    let err = render_pdf(&document(1), &FontSource::file(DEJAVU)).expect_err("DejaVu has no CJK");
    assert!(matches!(err, ReportError::FontLacksCjk { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(DEJAVU), "{message}");
    assert!(message.contains("fonts-droid-fallback"), "{message}");
    assert!(message.contains("MODELFLEET_REPORT_FONT"), "{message}");
}

#[test]
fn explicit_font_file_renders() {
    assert!(
        Path::new(DROID).exists(),
        "install fonts-droid-fallback for this test"
    );
    let pdf = render_pdf(&document(2), &FontSource::file(DROID)).expect("render with Droid");
    assert!(pdf.starts_with(b"%PDF-"));
}
