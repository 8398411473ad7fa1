//! Finding the font files the PDF report embeds.
//!
//! The report is mostly Chinese, so it needs a font with CJK glyphs; PDF
//! viewers cannot be trusted to have one, so it is embedded. Common CJK
//! fonts (Droid Sans Fallback in particular) have no Latin letters, so a
//! Latin fallback (DejaVu Sans) is loaded too and each character is drawn
//! with the first font that has it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ttf_parser::Face;

use super::ReportError;

/// The environment variable that names the Chinese font to use instead of
/// the known system paths.
pub const FONT_ENV: &str = "MODELFLEET_REPORT_FONT";

/// Where Debian-family and other common distributions install CJK fonts, in
/// order of preference. `.ttc` collections work: the first face with
/// Chinese glyphs is used.
const CJK_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
];

/// Latin fonts tried when the Chinese font lacks Latin letters.
const LATIN_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Characters a font must have to count as "having Chinese glyphs": the
/// report's own fixed labels use them.
const CJK_PROBE: &str = "等保通过不需人工举证";

/// Characters a font set must have to count as covering Latin text.
const LATIN_PROBE: &str = "Aa0";

/// Where to find the fonts for [`render_pdf`](super::render_pdf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontSource {
    primary: Primary,
    fallbacks: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Primary {
    /// `MODELFLEET_REPORT_FONT`, else the first of [`CJK_FONT_PATHS`] that
    /// exists and has Chinese glyphs.
    System,
    /// Exactly this file.
    File(PathBuf),
}

impl FontSource {
    /// Use the font named by `MODELFLEET_REPORT_FONT`, or else the first
    /// installed font from a list of known CJK font paths (Droid Sans
    /// Fallback, Noto Sans CJK, WenQuanYi). The lookup happens when the
    /// report is rendered.
    pub fn system() -> Self {
        Self {
            primary: Primary::System,
            fallbacks: Vec::new(),
        }
    }

    /// Use exactly this font file (`.ttf`, `.otf` or `.ttc`) for Chinese
    /// text. It must have Chinese glyphs.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            primary: Primary::File(path.into()),
            fallbacks: Vec::new(),
        }
    }

    /// Also try this font for characters the main font lacks, before the
    /// known system Latin fonts.
    pub fn with_fallback(mut self, path: impl Into<PathBuf>) -> Self {
        self.fallbacks.push(path.into());
        self
    }

    /// Read the fonts: the Chinese one first, then the fallbacks that exist.
    pub(crate) fn load(&self) -> Result<Vec<LoadedFont>, ReportError> {
        self.load_with_env(std::env::var_os(FONT_ENV))
    }

    /// [`Self::load`] with the environment variable's value passed in, so
    /// that tests need not change the process environment.
    fn load_with_env(&self, env_font: Option<OsString>) -> Result<Vec<LoadedFont>, ReportError> {
        let primary = match (&self.primary, env_font) {
            (Primary::File(path), _) => LoadedFont::read_cjk(path)?,
            (Primary::System, Some(path)) if !path.is_empty() => {
                LoadedFont::read_cjk(Path::new(&path))?
            }
            (Primary::System, _) => find_system_cjk_font()?,
        };
        let mut fonts = vec![primary];
        for path in &self.fallbacks {
            fonts.push(LoadedFont::read(path)?);
        }
        if !covers(&fonts, LATIN_PROBE) {
            // Best effort: a system font that is missing or broken is just
            // not used; the coverage check below says what is wrong.
            fonts.extend(
                LATIN_FONT_PATHS
                    .iter()
                    .map(Path::new)
                    .filter(|p| p.exists())
                    .filter_map(|p| LoadedFont::read(p).ok())
                    .take(1),
            );
        }
        if !covers(&fonts, LATIN_PROBE) {
            return Err(ReportError::NoLatinFont {
                path: fonts[0].path.clone(),
            });
        }
        Ok(fonts)
    }
}

/// The first known CJK font path that exists and has Chinese glyphs.
fn find_system_cjk_font() -> Result<LoadedFont, ReportError> {
    let searched: Vec<PathBuf> = CJK_FONT_PATHS.iter().map(PathBuf::from).collect();
    let mut first_error = None;
    for path in searched.iter().filter(|p| p.exists()) {
        match LoadedFont::read_cjk(path) {
            Ok(font) => return Ok(font),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or(ReportError::NoCjkFont { searched }))
}

/// Whether every character of `probe` is in at least one of `fonts`.
fn covers(fonts: &[LoadedFont], probe: &str) -> bool {
    probe.chars().all(|c| {
        fonts
            .iter()
            .any(|f| f.face().is_ok_and(|face| face.glyph_index(c).is_some()))
    })
}

/// A font file's bytes and which face of it to use.
#[derive(Debug, Clone)]
pub(crate) struct LoadedFont {
    pub(crate) path: PathBuf,
    pub(crate) data: Vec<u8>,
    /// The face index inside a `.ttc` collection (0 for a single font).
    pub(crate) index: u32,
}

impl LoadedFont {
    /// Read a font and use its first face.
    fn read(path: &Path) -> Result<Self, ReportError> {
        let data = std::fs::read(path).map_err(|source| ReportError::FontRead {
            path: path.to_path_buf(),
            source,
        })?;
        let font = Self {
            path: path.to_path_buf(),
            data,
            index: 0,
        };
        font.face()?;
        Ok(font)
    }

    /// Read a font and pick its first face that has Chinese glyphs.
    fn read_cjk(path: &Path) -> Result<Self, ReportError> {
        let mut font = Self::read(path)?;
        let faces = ttf_parser::fonts_in_collection(&font.data).unwrap_or(1);
        let index = (0..faces).find(|&index| {
            Face::parse(&font.data, index)
                .is_ok_and(|face| CJK_PROBE.chars().all(|c| face.glyph_index(c).is_some()))
        });
        match index {
            Some(index) => {
                font.index = index;
                Ok(font)
            }
            None => Err(ReportError::FontLacksCjk {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Parse the chosen face. Cheap: it only reads the table directory.
    pub(crate) fn face(&self) -> Result<Face<'_>, ReportError> {
        Face::parse(&self.data, self.index).map_err(|err| ReportError::FontParse {
            path: self.path.clone(),
            reason: err.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DROID: &str = "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf";
    const DEJAVU: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

    #[test]
    fn env_variable_overrides_the_known_paths() {
        let fonts = FontSource::system()
            .load_with_env(Some(OsString::from(DEJAVU)))
            .map(|fonts| fonts.len());
        // DejaVu Sans has no Chinese, so the override is used and rejected
        // rather than silently replaced by Droid Sans Fallback.
        match fonts {
            Err(ReportError::FontLacksCjk { path }) => assert_eq!(path, Path::new(DEJAVU)),
            other => panic!("expected FontLacksCjk, got {other:?}"),
        }
    }

    #[test]
    fn empty_env_variable_is_ignored() {
        let fonts = FontSource::system()
            .load_with_env(Some(OsString::new()))
            .expect("Droid Sans Fallback is installed (fonts-droid-fallback)");
        assert_eq!(fonts[0].path, Path::new(DROID));
    }

    #[test]
    fn droid_fallback_gets_a_latin_fallback() {
        let fonts = FontSource::file(DROID)
            .load_with_env(None)
            .expect("fonts-droid-fallback and fonts-dejavu-core are installed");
        assert!(fonts.len() >= 2, "Droid Sans Fallback lacks Latin letters");
        assert!(covers(&fonts, "等保 Level 3"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = FontSource::file("/nonexistent/font.ttf")
            .load_with_env(None)
            .expect_err("the file does not exist");
        assert!(err.to_string().contains("/nonexistent/font.ttf"), "{err}");
    }

    #[test]
    fn no_font_found_says_what_to_install() {
        let err = ReportError::NoCjkFont {
            searched: vec![PathBuf::from("/a.ttf"), PathBuf::from("/b.ttc")],
        };
        let message = err.to_string();
        assert!(message.contains("/a.ttf, /b.ttc"), "{message}");
        assert!(message.contains("fonts-droid-fallback"), "{message}");
        assert!(message.contains(FONT_ENV), "{message}");
    }
}
