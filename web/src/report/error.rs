//! Why a report could not be rendered.

use std::path::PathBuf;

/// An error from rendering a report as PDF.
///
/// The messages are meant for an operator reading a log or an HTTP error
/// body, so the font errors say what to install.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No configured or known font file exists.
    #[error(
        "no font with Chinese glyphs found (looked at {}): install fonts-droid-fallback \
         (Debian) or set MODELFLEET_REPORT_FONT to a .ttf file",
        display_paths(.searched)
    )]
    NoCjkFont {
        /// The paths that were tried, in order.
        searched: Vec<PathBuf>,
    },

    /// A font file was found but cannot render Chinese.
    #[error(
        "font {path} has no Chinese glyphs: install fonts-droid-fallback (Debian) or set \
         MODELFLEET_REPORT_FONT to a .ttf file that covers Chinese"
    )]
    FontLacksCjk {
        /// The font that was rejected.
        path: PathBuf,
    },

    /// The Chinese font has no Latin letters and no fallback font has them.
    #[error(
        "font {path} has no Latin glyphs and no Latin fallback font was found: install \
         fonts-dejavu-core (Debian)"
    )]
    NoLatinFont {
        /// The Chinese font, which lacks Latin letters.
        path: PathBuf,
    },

    /// A font file could not be read.
    #[error("cannot read font {path}: {source}")]
    FontRead {
        /// The font file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A font file is not a TrueType/OpenType font that can be parsed.
    #[error("cannot parse font {path}: {reason}")]
    FontParse {
        /// The font file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// The font could not be reduced to the glyphs the report uses.
    #[error("cannot subset font {path}: {reason}")]
    FontSubset {
        /// The font file.
        path: PathBuf,
        /// What the subsetter said.
        reason: String,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
