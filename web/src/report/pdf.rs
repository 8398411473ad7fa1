//! The report as a PDF.
//!
//! How it is built:
//!
//! 1. [`FontSource`] finds a Chinese font and, if it lacks Latin letters, a
//!    Latin fallback.
//! 2. The layout module maps each character to the first font that has it,
//!    wraps text from the glyph advances (CJK breaks between any
//!    characters, Latin at spaces), and places everything on A4 pages.
//! 3. Each font is cut down to the glyphs the pages use with `subsetter`
//!    (a CJK font is megabytes, a report needs a few hundred glyphs). The
//!    subset renumbers glyphs 0..n, so the pages are written with the new
//!    numbers.
//! 4. `pdf-writer` writes each font as a Type0 font with Identity-H
//!    encoding over a CIDFont (CIDFontType2 for TrueType outlines), whose
//!    codes are the subset's glyph ids, with a `/W` widths array and a
//!    `/ToUnicode` map so that copying and `pdftotext` give the original
//!    characters. Streams are deflate-compressed.

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use subsetter::GlyphRemapper;
use ttf_parser::Face;

use super::font::LoadedFont;
use super::layout::{self, Glyph, Op, PAGE_HEIGHT, PAGE_WIDTH, Page, Shaper};
use super::{FontSource, ReportDocument, ReportError};

/// Render `doc` as an A4 PDF, embedding subsets of the fonts `font` finds.
pub fn render_pdf(doc: &ReportDocument, font: &FontSource) -> Result<Vec<u8>, ReportError> {
    let fonts = font.load()?;
    let faces = fonts
        .iter()
        .map(LoadedFont::face)
        .collect::<Result<Vec<_>, _>>()?;
    let mut shaper = Shaper::new(&faces);
    let pages = layout::layout(doc, &mut shaper);
    let subsets = subset_fonts(&fonts, shaper.faces(), &pages)?;
    Ok(write_pdf(doc, &pages, &subsets))
}

/// One font cut down to the glyphs the report uses.
struct Subset<'a> {
    face: &'a Face<'a>,
    /// The subset font file.
    data: Vec<u8>,
    /// Old glyph id → new glyph id (the CID written on the pages).
    remapper: GlyphRemapper,
    /// New glyph id → the character it was used for.
    chars: BTreeMap<u16, char>,
    /// Whether the outlines are CFF (OpenType/`.otf`, Noto CJK) rather than
    /// TrueType: the PDF font type differs.
    cff: bool,
    /// Six letters that mark the font name as a subset (PDF 9.6.4).
    tag: String,
}

/// Subset every font that the pages use; unused fallbacks are left out.
fn subset_fonts<'a>(
    fonts: &[LoadedFont],
    faces: &'a [Face<'a>],
    pages: &[Page],
) -> Result<Vec<Option<Subset<'a>>>, ReportError> {
    let mut used: Vec<BTreeMap<u16, char>> = vec![BTreeMap::new(); fonts.len()];
    for glyph in pages.iter().flat_map(page_glyphs) {
        used[glyph.font].entry(glyph.id).or_insert(glyph.ch);
    }
    fonts
        .iter()
        .zip(faces)
        .zip(used)
        .map(|((font, face), used)| {
            if used.is_empty() {
                return Ok(None);
            }
            let ids: Vec<u16> = std::iter::once(0).chain(used.keys().copied()).collect();
            let remapper = GlyphRemapper::new_from_glyphs_sorted(&ids);
            let data = subsetter::subset(&font.data, font.index, &remapper).map_err(|err| {
                ReportError::FontSubset {
                    path: font.path.clone(),
                    reason: err.to_string(),
                }
            })?;
            let chars = used
                .iter()
                .filter(|&(&old, _)| old != 0)
                .filter_map(|(&old, &ch)| Some((remapper.get(old)?, ch)))
                .collect();
            Ok(Some(Subset {
                face,
                data,
                cff: face.tables().cff.is_some(),
                tag: subset_tag(&ids),
                remapper,
                chars,
            }))
        })
        .collect()
}

fn page_glyphs(page: &Page) -> impl Iterator<Item = &Glyph> {
    page.ops.iter().flat_map(|op| -> &[Glyph] {
        match op {
            Op::Text { glyphs, .. } => glyphs.as_slice(),
            Op::Fill { .. } | Op::Rule { .. } => &[],
        }
    })
}

/// A deterministic subset tag derived from the glyph set (FNV-1a), so the
/// same report gives the same bytes.
fn subset_tag(ids: &[u16]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ids.iter().flat_map(|id| id.to_be_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..6)
        .map(|i| char::from(b'A' + ((hash >> (i * 5)) % 26) as u8))
        .collect()
}

/// Hands out object numbers in order.
struct Refs(i32);

impl Refs {
    fn next(&mut self) -> Ref {
        self.0 += 1;
        Ref::new(self.0)
    }
}

/// The resource name of font `index` on the pages: `/F0`, `/F1`, …
fn font_name(index: usize) -> Vec<u8> {
    format!("F{index}").into_bytes()
}

fn write_pdf(doc: &ReportDocument, pages: &[Page], subsets: &[Option<Subset<'_>>]) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let mut refs = Refs(0);
    let catalog = refs.next();
    let tree = refs.next();
    let info = refs.next();
    let font_refs: Vec<Option<Ref>> = subsets
        .iter()
        .map(|subset| subset.as_ref().map(|_| refs.next()))
        .collect();
    let page_refs: Vec<(Ref, Ref)> = pages.iter().map(|_| (refs.next(), refs.next())).collect();

    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_refs.iter().map(|&(page, _)| page))
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    let title = format!("{} / {}", doc.title_zh, doc.title_en);
    pdf.document_info(info)
        .title(TextStr(&title))
        .subject(TextStr(&doc.subject))
        .creator(TextStr("modelfleet"))
        .producer(TextStr("modelfleet-web (pdf-writer)"));

    for (page, &(page_ref, content_ref)) in pages.iter().zip(&page_refs) {
        let mut writer = pdf.page(page_ref);
        writer
            .parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_ref);
        let mut resources = writer.resources();
        let mut fonts = resources.fonts();
        for (index, font_ref) in font_refs.iter().enumerate() {
            if let Some(font_ref) = font_ref {
                fonts.pair(Name(&font_name(index)), *font_ref);
            }
        }
        fonts.finish();
        resources.finish();
        writer.finish();
        let content = deflate(&page_content(page, subsets));
        pdf.stream(content_ref, &content)
            .filter(Filter::FlateDecode);
    }

    for (index, (subset, font_ref)) in subsets.iter().zip(&font_refs).enumerate() {
        if let (Some(subset), Some(font_ref)) = (subset, font_ref) {
            write_font(&mut pdf, &mut refs, *font_ref, subset, index);
        }
    }
    pdf.finish()
}

/// The drawing operators of one page, in PDF's bottom-up coordinates.
fn page_content(page: &Page, subsets: &[Option<Subset<'_>>]) -> Vec<u8> {
    let mut content = Content::new();
    for op in &page.ops {
        match op {
            Op::Fill {
                x,
                top,
                width,
                height,
                color,
            } => {
                content.set_fill_rgb(color.0, color.1, color.2);
                content.rect(*x, PAGE_HEIGHT - top - height, *width, *height);
                content.fill_nonzero();
            }
            Op::Rule { x, y, width, color } => {
                content.set_stroke_rgb(color.0, color.1, color.2);
                content.set_line_width(0.5);
                content.move_to(*x, PAGE_HEIGHT - y);
                content.line_to(x + width, PAGE_HEIGHT - y);
                content.stroke();
            }
            Op::Text {
                x,
                baseline,
                size,
                color,
                glyphs,
            } => {
                content.begin_text();
                content.set_fill_rgb(color.0, color.1, color.2);
                content.set_text_matrix([1.0, 0.0, 0.0, 1.0, *x, PAGE_HEIGHT - baseline]);
                // Consecutive glyphs of one font are one show operation; the
                // text position advances by the /W widths, which are the
                // same advances the layout used.
                for run in glyphs.chunk_by(|a, b| a.font == b.font) {
                    let font = run[0].font;
                    let codes = encode_run(run, subsets.get(font).and_then(Option::as_ref));
                    content.set_font(Name(&font_name(font)), *size);
                    content.show(Str(&codes));
                }
                content.end_text();
            }
        }
    }
    content.finish().into_vec()
}

/// Identity-H codes: each glyph's subset id as two big-endian bytes.
fn encode_run(run: &[Glyph], subset: Option<&Subset<'_>>) -> Vec<u8> {
    run.iter()
        .map(|g| subset.and_then(|s| s.remapper.get(g.id)).unwrap_or(0))
        .flat_map(u16::to_be_bytes)
        .collect()
}

/// Write the Type0 font, its CIDFont, descriptor, ToUnicode map and the
/// embedded subset.
fn write_font(pdf: &mut Pdf, refs: &mut Refs, type0: Ref, subset: &Subset<'_>, index: usize) {
    let cid_font = refs.next();
    let descriptor = refs.next();
    let to_unicode = refs.next();
    let file = refs.next();
    let base_font = format!("{}+{}", subset.tag, postscript_name(subset.face, index));
    let base_font = Name(base_font.as_bytes());
    let system_info = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };

    pdf.type0_font(type0)
        .base_font(base_font)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_font)
        .to_unicode(to_unicode);

    let mut cid = pdf.cid_font(cid_font);
    cid.subtype(if subset.cff {
        CidFontType::Type0
    } else {
        CidFontType::Type2
    })
    .base_font(base_font)
    .system_info(system_info)
    .font_descriptor(descriptor)
    .default_width(0.0);
    if !subset.cff {
        cid.cid_to_gid_map_predefined(Name(b"Identity"));
    }
    cid.widths().consecutive(0, subset_widths(subset));
    cid.finish();

    write_descriptor(pdf, descriptor, file, subset, base_font);

    let mut cmap = pdf_writer::types::UnicodeCmap::new(Name(b"Adobe-Identity-UCS"), system_info);
    for (&cid, &ch) in &subset.chars {
        cmap.pair(cid, ch);
    }
    let cmap = deflate(cmap.finish().as_slice());
    pdf.cmap(to_unicode, &cmap).filter(Filter::FlateDecode);

    let data = deflate(&subset.data);
    let mut stream = pdf.stream(file, &data);
    stream.filter(Filter::FlateDecode);
    if subset.cff {
        stream.pair(Name(b"Subtype"), Name(b"OpenType"));
    }
}

/// Advance widths of the subset's glyphs in order of their new ids, in the
/// PDF's 1/1000 em.
fn subset_widths(subset: &Subset<'_>) -> Vec<f32> {
    let units = f32::from(subset.face.units_per_em().max(1));
    subset
        .remapper
        .remapped_gids()
        .map(|old| {
            let advance = subset
                .face
                .glyph_hor_advance(ttf_parser::GlyphId(old))
                .unwrap_or(0);
            f32::from(advance) * 1000.0 / units
        })
        .collect()
}

fn write_descriptor(pdf: &mut Pdf, id: Ref, file: Ref, subset: &Subset<'_>, name: Name<'_>) {
    let face = subset.face;
    let scale = 1000.0 / f32::from(face.units_per_em().max(1));
    let bbox = face.global_bounding_box();
    let ascent = f32::from(face.ascender()) * scale;
    let mut descriptor = pdf.font_descriptor(id);
    descriptor
        .name(name)
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(
            f32::from(bbox.x_min) * scale,
            f32::from(bbox.y_min) * scale,
            f32::from(bbox.x_max) * scale,
            f32::from(bbox.y_max) * scale,
        ))
        .italic_angle(face.italic_angle())
        .ascent(ascent)
        .descent(f32::from(face.descender()) * scale)
        .cap_height(
            face.capital_height()
                .map_or(ascent, |h| f32::from(h) * scale),
        )
        // Not in the font file; a typical value for a regular weight.
        .stem_v(80.0);
    if subset.cff {
        descriptor.font_file3(file);
    } else {
        descriptor.font_file2(file);
    }
}

/// The font's PostScript name limited to the characters a PDF name needs
/// no escaping for; "Font{index}" when it has none.
fn postscript_name(face: &Face<'_>, index: usize) -> String {
    let name = face
        .names()
        .into_iter()
        .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
        .find_map(|n| n.to_string())
        .unwrap_or_default();
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if clean.is_empty() {
        format!("Font{index}")
    } else {
        clean
    }
}

/// zlib-compress a stream for `/FlateDecode`.
fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_tag_is_six_capitals_and_stable() {
        let tag = subset_tag(&[0, 3, 17]);
        assert_eq!(tag.len(), 6);
        assert!(tag.chars().all(|c| c.is_ascii_uppercase()), "{tag}");
        assert_eq!(tag, subset_tag(&[0, 3, 17]));
        assert_ne!(tag, subset_tag(&[0, 3, 18]));
    }

    #[test]
    fn deflate_round_trips() {
        let data = "等保 report ".repeat(50);
        let packed = deflate(data.as_bytes());
        assert!(packed.len() < data.len());
        let unpacked = miniz_oxide::inflate::decompress_to_vec_zlib(&packed).expect("valid zlib");
        assert_eq!(unpacked, data.as_bytes());
    }
}
