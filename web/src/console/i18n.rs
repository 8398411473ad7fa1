//! The console's UI text in English (the default) and Chinese: which
//! language a request asked for, and looking a key up in a table of text.
//!
//! This module knows no page. Each page module keeps the text of its own
//! pages in a [`Table`] beside them (`deploy::TEXT`, `billing::TEXT`, …);
//! the layout's (navigation, error pages, words every page uses) is
//! `page::TEXT`. A page hands its table to [`Lang::t`], and to its
//! template through its `Chrome`, whose `t` looks in the page's table and
//! then in the layout's. The console's tests check that every key a page
//! uses is in one of the two, in both languages.

use axum::http::HeaderMap;

use super::cookie::cookie;

pub(crate) const LANG_COOKIE: &str = "mf_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

/// `(key, English, Chinese)`.
pub type Table = &'static [(&'static str, &'static str, &'static str)];

impl Lang {
    /// The language a request asked for with the switch (its cookie).
    pub fn of(headers: &HeaderMap) -> Lang {
        cookie(headers, LANG_COOKIE)
            .and_then(|c| Lang::from_code(&c))
            .unwrap_or_default()
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// `en` or `zh`, as `<html lang>` takes it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The text of `key` in `table`.
    pub fn t(self, table: Table, key: &str) -> &'static str {
        self.t_in(&[table], key)
    }

    /// The text of `key` in the first of `tables` that has it; a key in
    /// none of them shows as missing (and fails the console's text tests).
    pub fn t_in(self, tables: &[Table], key: &str) -> &'static str {
        let found = tables
            .iter()
            .flat_map(|table| table.iter())
            .find(|(k, _, _)| *k == key);
        match found {
            Some((_, en, zh)) => match self {
                Lang::En => en,
                Lang::Zh => zh,
            },
            None => {
                tracing::warn!(key, "console text missing");
                "(missing text)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_switch_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::of(&headers), Lang::En);
        headers.insert("cookie", "mf_lang=zh".parse().unwrap());
        assert_eq!(Lang::of(&headers), Lang::Zh);
        headers.insert("cookie", "mf_lang=fr".parse().unwrap());
        assert_eq!(Lang::of(&headers), Lang::En);
    }

    #[test]
    fn a_key_is_looked_up_in_the_first_table_that_has_it() {
        const PAGE: Table = &[("page.title", "Title", "标题")];
        const LAYOUT: Table = &[("nav.home", "Home", "首页"), ("page.title", "x", "x")];
        assert_eq!(Lang::Zh.t(PAGE, "page.title"), "标题");
        assert_eq!(Lang::En.t_in(&[PAGE, LAYOUT], "page.title"), "Title");
        assert_eq!(Lang::Zh.t_in(&[PAGE, LAYOUT], "nav.home"), "首页");
        assert_eq!(Lang::En.t(PAGE, "nav.home"), "(missing text)");
    }
}
