//! The report as a standalone, printable HTML page.

use askama::Template;

use super::ReportDocument;

/// The askama page for a report. The template is `.html`, so askama escapes
/// every `{{ … }}` expression: the subject and the evidence can hold text
/// that an operator or a scanned system chose.
#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    doc: &'a ReportDocument,
}

/// Render `doc` as a complete HTML document (inline CSS, no JavaScript), in
/// Chinese and English, suitable for printing from a browser.
pub fn render_html(doc: &ReportDocument) -> String {
    match (ReportPage { doc }).render() {
        Ok(page) => page,
        // The template calls no fallible filter, so rendering fails only if
        // writing to a `String` fails, which it does not. Still, answer with
        // a page rather than panicking in a request handler.
        Err(err) => format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>report \
             error</title></head><body><p>cannot render the report: {}</p></body></html>",
            escape_text(&err.to_string())
        ),
    }
}

/// Minimal HTML text escaping for the error page above (askama's escaping is
/// used everywhere else).
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_text;

    #[test]
    fn error_page_text_is_escaped() {
        assert_eq!(
            escape_text("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
