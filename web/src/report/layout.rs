//! Hand layout of the PDF report: glyph lookup, line wrapping and pages.
//!
//! There is no shaping engine here on purpose: the report is Chinese and
//! Latin text only, where one character is one glyph and no kerning is
//! needed for a readable table. Layout works top-down in PDF points
//! (1/72 inch) with `y` growing downwards; the writer flips it.

use std::collections::HashMap;

use ttf_parser::Face;

use super::{ItemStatus, ReportDocument, ReportItem};

/// A4 in points.
pub(crate) const PAGE_WIDTH: f32 = 595.28;
pub(crate) const PAGE_HEIGHT: f32 = 841.89;

const MARGIN_X: f32 = 42.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;
/// Where the body starts, below the running header.
const BODY_TOP: f32 = 58.0;
/// Where the body must end, above the running footer.
const BODY_BOTTOM: f32 = PAGE_HEIGHT - 50.0;

const BODY_SIZE: f32 = 9.0;
const SMALL_SIZE: f32 = 8.0;
/// Line height as a multiple of the font size; CJK text needs more air than
/// Latin text.
const LEADING: f32 = 1.45;
const CELL_PAD: f32 = 4.0;
/// Hanging indent of the evidence bullets.
const BULLET_INDENT: f32 = 8.0;

/// Table column widths: id, requirement, status, evidence (the rest).
const COLUMNS: [f32; 4] = [72.0, 222.0, 66.0, CONTENT_WIDTH - 72.0 - 222.0 - 66.0];

/// An RGB colour, each part 0.0–1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Color(pub(crate) f32, pub(crate) f32, pub(crate) f32);

const BLACK: Color = Color(0.1, 0.1, 0.1);
const GREY: Color = Color(0.38, 0.38, 0.38);
const RULE: Color = Color(0.75, 0.75, 0.75);
const HEADER_FILL: Color = Color(0.93, 0.93, 0.93);

fn status_color(status: ItemStatus) -> Color {
    match status {
        ItemStatus::Pass => Color(0.11, 0.43, 0.18),
        ItemStatus::Fail => Color(0.70, 0.15, 0.12),
        ItemStatus::ManualEvidence => Color(0.54, 0.35, 0.0),
    }
}

/// One character drawn with one glyph of one of the loaded fonts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Glyph {
    /// Index into the font list (0 is the Chinese font).
    pub(crate) font: usize,
    /// The glyph id in the original (not subset) font.
    pub(crate) id: u16,
    /// The character it stands for, for the PDF's ToUnicode map.
    pub(crate) ch: char,
    /// Horizontal advance in em (advance / units per em).
    pub(crate) advance: f32,
}

/// Maps characters to glyphs: the first font that has the character wins;
/// a character no font has becomes the Chinese font's `.notdef` box.
pub(crate) struct Shaper<'a> {
    faces: &'a [Face<'a>],
    cache: HashMap<char, Glyph>,
}

impl<'a> Shaper<'a> {
    pub(crate) fn new(faces: &'a [Face<'a>]) -> Self {
        Self {
            faces,
            cache: HashMap::new(),
        }
    }

    /// The faces, in the order of [`Glyph::font`].
    pub(crate) fn faces(&self) -> &'a [Face<'a>] {
        self.faces
    }

    fn glyph(&mut self, ch: char) -> Glyph {
        if let Some(glyph) = self.cache.get(&ch) {
            return *glyph;
        }
        let found = self
            .faces
            .iter()
            .enumerate()
            .find_map(|(font, face)| face.glyph_index(ch).map(|id| (font, id)));
        let (font, id) = found.unwrap_or((0, ttf_parser::GlyphId(0)));
        let face = &self.faces[font];
        let advance = f32::from(face.glyph_hor_advance(id).unwrap_or(0))
            / f32::from(face.units_per_em().max(1));
        let glyph = Glyph {
            font,
            id: id.0,
            ch,
            advance,
        };
        self.cache.insert(ch, glyph);
        glyph
    }

    /// The glyphs for one line of text. Tabs become spaces and other control
    /// characters are dropped: they have no glyph and no width.
    fn shape(&mut self, text: &str) -> Vec<Glyph> {
        text.chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .map(|c| self.glyph(c))
            .collect()
    }
}

fn width(glyphs: &[Glyph], size: f32) -> f32 {
    glyphs.iter().map(|g| g.advance).sum::<f32>() * size
}

/// Whether `c` is written without spaces between words (Chinese, Japanese,
/// Korean and their punctuation), so a line may break before or after it.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x9FFF      // radicals, punctuation, kana, CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3FFFF) // extension planes
}

/// Punctuation that must not start a line (Chinese line-breaking rules).
fn no_break_before(c: char) -> bool {
    "，。、；：？！）》」』】〕…·,.;:?!)]}%".contains(c)
}

/// Punctuation that must not end a line.
fn no_break_after(c: char) -> bool {
    "（《「『【〔([{".contains(c)
}

/// Whether a line may break between `prev` and `next`. Latin words break
/// only at spaces; CJK text breaks between any two characters except
/// around punctuation that must stay attached.
fn can_break_between(prev: char, next: char) -> bool {
    if prev.is_whitespace() || next.is_whitespace() {
        return true;
    }
    if no_break_before(next) || no_break_after(prev) {
        return false;
    }
    is_cjk(prev) || is_cjk(next)
}

/// Split glyphs into unbreakable pieces: words, single CJK characters (with
/// attached punctuation) and runs of spaces.
fn pieces(glyphs: &[Glyph]) -> Vec<&[Glyph]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in 1..glyphs.len() {
        if can_break_between(glyphs[i - 1].ch, glyphs[i].ch) {
            pieces.push(&glyphs[start..i]);
            start = i;
        }
    }
    if start < glyphs.len() {
        pieces.push(&glyphs[start..]);
    }
    pieces
}

fn is_space(piece: &[Glyph]) -> bool {
    piece.first().is_some_and(|g| g.ch.is_whitespace())
}

/// Wrap `text` into lines no wider than `max_width` at `size`. Hard line
/// breaks are kept; a word longer than a line is cut between characters.
pub(crate) fn wrap(
    shaper: &mut Shaper<'_>,
    text: &str,
    size: f32,
    max_width: f32,
) -> Vec<Vec<Glyph>> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let glyphs = shaper.shape(paragraph);
        lines.extend(wrap_glyphs(&glyphs, size, max_width));
    }
    lines
}

/// Greedy line filling: add pieces while they fit, drop spaces at line ends.
fn wrap_glyphs(glyphs: &[Glyph], size: f32, max_width: f32) -> Vec<Vec<Glyph>> {
    let mut lines = Vec::new();
    let mut line: Vec<Glyph> = Vec::new();
    let mut pending_space: &[Glyph] = &[];
    for piece in pieces(glyphs) {
        if is_space(piece) {
            pending_space = if line.is_empty() { &[] } else { piece };
            continue;
        }
        let needed = width(&line, size) + width(pending_space, size) + width(piece, size);
        if !line.is_empty() && needed > max_width {
            lines.push(std::mem::take(&mut line));
            pending_space = &[];
        }
        if line.is_empty() && width(piece, size) > max_width {
            cut_long_piece(piece, size, max_width, &mut lines, &mut line);
        } else {
            line.extend_from_slice(pending_space);
            line.extend_from_slice(piece);
        }
        pending_space = &[];
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Put a piece wider than a line (a long URL, a hash) on as many lines as it
/// needs, at least one character per line; the last part stays open in
/// `line` so that text can follow it.
fn cut_long_piece(
    piece: &[Glyph],
    size: f32,
    max_width: f32,
    lines: &mut Vec<Vec<Glyph>>,
    line: &mut Vec<Glyph>,
) {
    for glyph in piece {
        if !line.is_empty() && width(line, size) + glyph.advance * size > max_width {
            lines.push(std::mem::take(line));
        }
        line.push(*glyph);
    }
}

/// Something drawn on a page, in top-down coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// A line of text whose baseline starts at (`x`, `baseline`).
    Text {
        x: f32,
        baseline: f32,
        size: f32,
        color: Color,
        glyphs: Vec<Glyph>,
    },
    /// A filled rectangle whose top-left corner is (`x`, `top`).
    Fill {
        x: f32,
        top: f32,
        width: f32,
        height: f32,
        color: Color,
    },
    /// A horizontal rule.
    Rule {
        x: f32,
        y: f32,
        width: f32,
        color: Color,
    },
}

/// One page's drawing operations.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Page {
    pub(crate) ops: Vec<Op>,
}

/// A wrapped line of a table cell.
#[derive(Debug, Clone)]
struct CellLine {
    indent: f32,
    size: f32,
    color: Color,
    glyphs: Vec<Glyph>,
}

impl CellLine {
    fn height(&self) -> f32 {
        self.size * LEADING
    }
}

/// Lays out the body flow, top to bottom, starting new pages as needed.
struct Composer<'s, 'a> {
    shaper: &'s mut Shaper<'a>,
    pages: Vec<Page>,
    /// The top of the next thing to draw on the last page.
    y: f32,
}

impl<'s, 'a> Composer<'s, 'a> {
    fn new(shaper: &'s mut Shaper<'a>) -> Self {
        Self {
            shaper,
            pages: vec![Page::default()],
            y: BODY_TOP,
        }
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.ops.push(op);
        }
    }

    fn new_page(&mut self) {
        self.pages.push(Page::default());
        self.y = BODY_TOP;
    }

    fn room_left(&self) -> f32 {
        BODY_BOTTOM - self.y
    }

    /// Draw one already-wrapped line whose line box starts at `top`.
    fn line_at(&mut self, x: f32, top: f32, size: f32, color: Color, glyphs: Vec<Glyph>) {
        if glyphs.is_empty() {
            return;
        }
        // Put the baseline where a line of this size would have it: the
        // glyphs' ascent is about 0.9 em, plus half the extra leading.
        let baseline = top + size * (0.9 + (LEADING - 1.0) / 2.0);
        self.push(Op::Text {
            x,
            baseline,
            size,
            color,
            glyphs,
        });
    }

    /// A wrapped paragraph across the full content width, breaking pages
    /// between lines.
    fn paragraph(&mut self, text: &str, size: f32, color: Color) {
        self.paragraph_at(MARGIN_X, CONTENT_WIDTH, text, size, color);
    }

    fn paragraph_at(&mut self, x: f32, max_width: f32, text: &str, size: f32, color: Color) {
        for glyphs in wrap(self.shaper, text, size, max_width) {
            let height = size * LEADING;
            if self.room_left() < height {
                self.new_page();
            }
            let top = self.y;
            self.line_at(x, top, size, color, glyphs);
            self.y += height;
        }
    }

    /// A bilingual section heading with a rule below it, kept together with
    /// at least a few lines of what follows.
    fn heading(&mut self, zh: &str, en: &str) {
        let size = 12.0;
        if self.room_left() < size * LEADING + 60.0 {
            self.new_page();
        }
        self.y += 8.0;
        self.paragraph(&format!("{zh}  {en}"), size, BLACK);
        self.push(Op::Rule {
            x: MARGIN_X,
            y: self.y + 1.0,
            width: CONTENT_WIDTH,
            color: RULE,
        });
        self.y += 6.0;
    }

    fn title_block(&mut self, doc: &ReportDocument) {
        self.paragraph(&doc.title_zh, 18.0, BLACK);
        self.paragraph(&doc.title_en, 13.0, GREY);
        self.y += 6.0;
        self.label_value("生成时间 / Generated", &doc.generated_at);
        self.label_value("检查对象 / Subject", &doc.subject);
    }

    /// A label in a fixed left column and its wrapped value beside it.
    fn label_value(&mut self, label: &str, value: &str) {
        const LABEL_WIDTH: f32 = 180.0;
        let size = BODY_SIZE + 0.5;
        let labels = wrap(self.shaper, label, size, LABEL_WIDTH - 8.0);
        let values = wrap(self.shaper, value, size, CONTENT_WIDTH - LABEL_WIDTH);
        let rows = labels.len().max(values.len());
        let height = size * LEADING;
        if self.room_left() < height * rows.min(3) as f32 {
            self.new_page();
        }
        let mut labels = labels.into_iter();
        let mut values = values.into_iter();
        for _ in 0..rows {
            if self.room_left() < height {
                self.new_page();
            }
            let top = self.y;
            if let Some(glyphs) = labels.next() {
                self.line_at(MARGIN_X, top, size, GREY, glyphs);
            }
            if let Some(glyphs) = values.next() {
                self.line_at(MARGIN_X + LABEL_WIDTH, top, size, BLACK, glyphs);
            }
            self.y += height;
        }
    }

    fn summary(&mut self, doc: &ReportDocument) {
        self.heading("概要", "Summary");
        for (label, value) in &doc.summary {
            self.label_value(label, value);
        }
    }

    /// Wrap the lines of one cell.
    fn cell(&mut self, column: usize, parts: &[(&str, f32, Color, f32)]) -> Vec<CellLine> {
        let mut lines = Vec::new();
        for &(text, size, color, indent) in parts {
            let max_width = COLUMNS[column] - 2.0 * CELL_PAD - indent;
            for glyphs in wrap(self.shaper, text, size, max_width) {
                lines.push(CellLine {
                    indent,
                    size,
                    color,
                    glyphs,
                });
            }
        }
        lines
    }

    fn header_cells(&mut self) -> Vec<Vec<CellLine>> {
        let titles = [
            ("编号", "ID"),
            ("要求", "Requirement"),
            ("结果", "Status"),
            ("证据", "Evidence"),
        ];
        titles
            .iter()
            .enumerate()
            .map(|(column, &(zh, en))| {
                self.cell(
                    column,
                    &[(zh, BODY_SIZE, BLACK, 0.0), (en, SMALL_SIZE, GREY, 0.0)],
                )
            })
            .collect()
    }

    fn item_cells(&mut self, item: &ReportItem) -> Vec<Vec<CellLine>> {
        let status = status_color(item.status);
        let id = self.cell(0, &[(item.id.as_str(), BODY_SIZE, BLACK, 0.0)]);
        let requirement = self.cell(
            1,
            &[
                (item.requirement_zh.as_str(), BODY_SIZE, BLACK, 0.0),
                (item.requirement_en.as_str(), SMALL_SIZE, GREY, 0.0),
            ],
        );
        let verdict = self.cell(
            2,
            &[
                (item.status.label_zh(), BODY_SIZE, status, 0.0),
                (item.status.label_en(), SMALL_SIZE, status, 0.0),
            ],
        );
        let mut evidence = Vec::new();
        if item.evidence.is_empty() {
            evidence = self.cell(3, &[("—", BODY_SIZE, GREY, 0.0)]);
        }
        for entry in &item.evidence {
            let mut lines = self.cell(3, &[(entry.as_str(), SMALL_SIZE, BLACK, BULLET_INDENT)]);
            // The bullet goes in front of the first line, in the indent.
            if let Some(first) = lines.first_mut() {
                let mut bullet = self.shaper.shape("- ");
                bullet.append(&mut first.glyphs);
                first.glyphs = bullet;
                first.indent = 0.0;
            }
            evidence.append(&mut lines);
        }
        vec![id, requirement, verdict, evidence]
    }

    fn table_header(&mut self) {
        let cells = self.header_cells();
        let height = row_height(&cells);
        self.push(Op::Fill {
            x: MARGIN_X,
            top: self.y,
            width: CONTENT_WIDTH,
            height,
            color: HEADER_FILL,
        });
        self.draw_row(cells, height);
    }

    /// Draw a row that fits, then a rule under it.
    fn draw_row(&mut self, cells: Vec<Vec<CellLine>>, height: f32) {
        let mut x = MARGIN_X;
        for (column, lines) in cells.into_iter().enumerate() {
            let mut top = self.y + CELL_PAD;
            for line in lines {
                let line_height = line.height();
                self.line_at(
                    x + CELL_PAD + line.indent,
                    top,
                    line.size,
                    line.color,
                    line.glyphs,
                );
                top += line_height;
            }
            x += COLUMNS[column];
        }
        self.y += height;
        self.push(Op::Rule {
            x: MARGIN_X,
            y: self.y,
            width: CONTENT_WIDTH,
            color: RULE,
        });
    }

    /// Start a new page that continues the table.
    fn table_page_break(&mut self) {
        self.new_page();
        self.table_header();
    }

    /// Draw an item's row: on this page if it fits, else on the next; a
    /// row taller than a whole page is split between lines.
    fn table_row(&mut self, mut cells: Vec<Vec<CellLine>>, fresh_page_room: f32) {
        loop {
            let height = row_height(&cells);
            if height <= self.room_left() {
                self.draw_row(cells, height);
                return;
            }
            if height <= fresh_page_room {
                self.table_page_break();
                continue;
            }
            let room = self.room_left() - 2.0 * CELL_PAD;
            let (now, rest) = split_cells(cells, room);
            if now.iter().all(Vec::is_empty) {
                self.table_page_break();
                cells = rest;
                continue;
            }
            let now_height = row_height(&now);
            self.draw_row(now, now_height);
            self.table_page_break();
            cells = rest;
        }
    }

    fn items(&mut self, doc: &ReportDocument) {
        self.heading("检查项", "Requirements");
        self.table_header();
        // The room a row has on a page that holds nothing but the header.
        let fresh_page_room = BODY_BOTTOM - BODY_TOP - row_height(&self.header_cells());
        for item in &doc.items {
            let cells = self.item_cells(item);
            self.table_row(cells, fresh_page_room);
        }
    }
}

fn cell_height(lines: &[CellLine]) -> f32 {
    lines.iter().map(CellLine::height).sum()
}

fn row_height(cells: &[Vec<CellLine>]) -> f32 {
    let tallest = cells.iter().map(|c| cell_height(c)).fold(0.0, f32::max);
    tallest + 2.0 * CELL_PAD
}

/// Split each cell so that its first part is at most `room` tall.
fn split_cells(cells: Vec<Vec<CellLine>>, room: f32) -> (Vec<Vec<CellLine>>, Vec<Vec<CellLine>>) {
    cells
        .into_iter()
        .map(|mut lines| {
            let mut used = 0.0;
            let fit = lines
                .iter()
                .take_while(|line| {
                    used += line.height();
                    used <= room
                })
                .count();
            let rest = lines.split_off(fit);
            (lines, rest)
        })
        .unzip()
}

/// Lay out the whole report: title, summary, then the item table; then add
/// the running header and the "page N / M" footer, which need the page
/// count.
pub(crate) fn layout(doc: &ReportDocument, shaper: &mut Shaper<'_>) -> Vec<Page> {
    let mut composer = Composer::new(shaper);
    composer.title_block(doc);
    composer.summary(doc);
    composer.items(doc);
    let mut pages = composer.pages;
    decorate(&mut pages, doc, shaper);
    pages
}

/// Add the running header (titles) and footer (date, page number).
fn decorate(pages: &mut [Page], doc: &ReportDocument, shaper: &mut Shaper<'_>) {
    let count = pages.len();
    let size = 7.5;
    let header = format!("{}  {}", doc.title_zh, doc.title_en);
    for (index, page) in pages.iter_mut().enumerate() {
        let mut header_glyphs = shaper.shape(&header);
        truncate_to_width(&mut header_glyphs, size, CONTENT_WIDTH);
        page.ops.push(Op::Text {
            x: MARGIN_X,
            baseline: 34.0,
            size,
            color: GREY,
            glyphs: header_glyphs,
        });
        page.ops.push(Op::Rule {
            x: MARGIN_X,
            y: 40.0,
            width: CONTENT_WIDTH,
            color: RULE,
        });
        let mut left = shaper.shape(&doc.generated_at);
        truncate_to_width(&mut left, size, CONTENT_WIDTH / 2.0);
        page.ops.push(Op::Text {
            x: MARGIN_X,
            baseline: PAGE_HEIGHT - 28.0,
            size,
            color: GREY,
            glyphs: left,
        });
        let number = shaper.shape(&format!(
            "第 {0} / {1} 页  page {0} / {1}",
            index + 1,
            count
        ));
        page.ops.push(Op::Text {
            x: PAGE_WIDTH - MARGIN_X - width(&number, size),
            baseline: PAGE_HEIGHT - 28.0,
            size,
            color: GREY,
            glyphs: number,
        });
    }
}

/// Cut a single line of running text (the page header) that would overflow
/// its space, keeping a little room at the end.
fn truncate_to_width(glyphs: &mut Vec<Glyph>, size: f32, max_width: f32) {
    if width(glyphs, size) <= max_width {
        return;
    }
    while !glyphs.is_empty() && width(glyphs, size) > max_width - size {
        glyphs.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fake glyphs: every character 0.5 em wide, CJK ones 1 em.
    fn glyphs(text: &str) -> Vec<Glyph> {
        text.chars()
            .map(|ch| Glyph {
                font: 0,
                id: 1,
                ch,
                advance: if is_cjk(ch) { 1.0 } else { 0.5 },
            })
            .collect()
    }

    fn text(lines: &[Vec<Glyph>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.iter().map(|g| g.ch).collect())
            .collect()
    }

    #[test]
    fn latin_wraps_at_spaces_and_drops_them() {
        // size 10: each Latin char 5 pt; 50 pt fits 10 chars.
        let lines = wrap_glyphs(&glyphs("two of three admins lack TOTP"), 10.0, 50.0);
        assert_eq!(text(&lines), ["two of", "three", "admins", "lack TOTP"]);
    }

    #[test]
    fn cjk_wraps_between_any_characters_but_keeps_punctuation() {
        // Each CJK char 10 pt; 40 pt fits 4, but "、" may not start a line,
        // so "口" moves down with it.
        let lines = wrap_glyphs(&glyphs("应采用口、令牌认证"), 10.0, 40.0);
        assert_eq!(text(&lines), ["应采用", "口、令牌", "认证"]);
    }

    #[test]
    fn mixed_text_breaks_at_cjk_boundaries() {
        let lines = wrap_glyphs(&glyphs("启用TOTP认证"), 10.0, 40.0);
        assert_eq!(text(&lines), ["启用TOTP", "认证"]);
    }

    #[test]
    fn overlong_word_is_cut() {
        let lines = wrap_glyphs(&glyphs("https://hub.example.com/x"), 10.0, 50.0);
        assert_eq!(text(&lines), ["https://hu", "b.example.", "com/x"]);
    }

    #[test]
    fn empty_text_is_one_empty_line() {
        assert_eq!(wrap_glyphs(&[], 10.0, 50.0).len(), 1);
    }

    #[test]
    fn tall_cells_split_by_room() {
        let line = |n: usize| CellLine {
            indent: 0.0,
            size: 10.0,
            color: BLACK,
            glyphs: glyphs(&n.to_string()),
        };
        let cells = vec![(0..5).map(line).collect(), vec![line(9)]];
        // Each line is 14.5 pt: 30 pt of room fits two.
        let (now, rest) = split_cells(cells, 30.0);
        assert_eq!(now.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(rest.iter().map(Vec::len).collect::<Vec<_>>(), [3, 0]);
    }
}
