//! Write a sample compliance report as `report.html` and `report.pdf` into
//! the directory given as the first argument (default: the current one), to
//! look at the layout:
//!
//! ```text
//! cargo run -p modelfleet-web --example sample_report -- /tmp/report [ITEMS]
//! pdftoppm -png -r 60 /tmp/report/report.pdf /tmp/report/page
//! ```

use std::path::PathBuf;

use modelfleet_web::report::{
    FontSource, ItemStatus, ReportDocument, ReportItem, render_html, render_pdf,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    let items: usize = args.next().map_or(Ok(40), |n| n.parse())?;
    let doc = sample(items);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.html"), render_html(&doc))?;
    let pdf = render_pdf(&doc, &FontSource::system())?;
    std::fs::write(dir.join("report.pdf"), &pdf)?;
    println!("wrote {} ({} bytes PDF)", dir.display(), pdf.len());
    Ok(())
}

fn sample(items: usize) -> ReportDocument {
    let statuses = [
        ItemStatus::Pass,
        ItemStatus::Fail,
        ItemStatus::ManualEvidence,
    ];
    let items = (0..items)
        .map(|n| ReportItem {
            id: format!("L3-CES1-{:02}", n + 1),
            requirement_zh: "应采用口令、密码技术、生物技术等两种或两种以上组合的鉴别技术对用户进行身份鉴别，且其中一种鉴别技术至少应使用密码技术来实现".to_owned(),
            requirement_en: "Users shall be authenticated with a combination of two or more \
                             techniques such as passwords, cryptography and biometrics"
                .to_owned(),
            status: statuses[n % statuses.len()],
            evidence: vec![
                "2 of 3 admins lack TOTP".to_owned(),
                "审计日志保留期为 30 天，少于 180 天".to_owned(),
            ],
        })
        .collect();
    ReportDocument {
        title_en: "MLPS 2.0 Level 3 Compliance Report".to_owned(),
        title_zh: "等保2.0 三级合规报告".to_owned(),
        generated_at: "2026-11-29 09:12:03 UTC".to_owned(),
        subject: "modelfleet hub at https://hub.example.com".to_owned(),
        summary: vec![
            ("通过 / Passed".to_owned(), "14".to_owned()),
            ("不通过 / Failed".to_owned(), "13".to_owned()),
            (
                "需人工举证 / Needs manual evidence".to_owned(),
                "13".to_owned(),
            ),
        ],
        items,
    }
}
