//! The console's UI text in English (the default) and Chinese. Pages ask
//! for text by key (`c.t("nav.deploy")` in a template); each part of the
//! console keeps its keys in a table of its own below. A test checks that
//! every key a template or handler uses has both texts.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::HeaderMap;

use super::page::cookie;

pub(crate) const LANG_COOKIE: &str = "mf_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

/// `(key, English, Chinese)`.
pub type Table = &'static [(&'static str, &'static str, &'static str)];

const TABLES: &[Table] = &[
    COMMON,
    super::deploy::TEXT,
    super::deployments::TEXT,
    super::billing::TEXT,
    super::audit::TEXT,
    super::compliance::TEXT,
    super::admin::TEXT,
];

fn texts() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static TEXTS: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        TABLES
            .iter()
            .flat_map(|t| t.iter())
            .map(|(k, en, zh)| (*k, (*en, *zh)))
            .collect()
    })
}

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

    /// The text of `key`; an unknown key shows itself (and fails the
    /// table test).
    pub fn t(self, key: &str) -> &'static str {
        match texts().get(key) {
            Some((en, zh)) => match self {
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

const COMMON: Table = &[
    ("brand", "modelfleet", "modelfleet"),
    ("nav.deploy", "Deploy", "部署模型"),
    ("nav.deployments", "Deployments", "部署列表"),
    ("nav.quotas", "Quotas", "配额"),
    ("nav.billing", "Billing", "账单"),
    ("nav.audit", "Audit", "审计"),
    ("nav.compliance", "Compliance", "合规"),
    ("nav.admin", "Admin", "平台管理"),
    ("nav.account", "Account", "账户"),
    ("nav.main", "Main navigation", "主导航"),
    ("nav.language", "Language", "语言"),
    ("sign_out", "Sign out", "退出登录"),
    ("sign_in.title", "Sign in", "登录"),
    ("sign_in.username", "User name", "用户名"),
    ("sign_in.password", "Password", "密码"),
    (
        "sign_in.totp",
        "Authenticator code (if your account has one)",
        "动态验证码（如已启用）",
    ),
    ("sign_in.submit", "Sign in", "登录"),
    (
        "sign_in.refused",
        "Sign-in refused: the user name, password or authenticator code is wrong, or the account is locked after too many failures.",
        "登录被拒绝：用户名、密码或动态验证码错误，或账户因多次失败已被锁定。",
    ),
    ("totp.title", "Second factor", "双因素认证"),
    (
        "totp.required",
        "Platform admins and auditors must turn on a second factor before using the console.",
        "平台管理员和审计员必须先启用双因素认证才能使用控制台。",
    ),
    (
        "totp.enabled",
        "A second factor is on for this account: signing in asks for a code from your authenticator app.",
        "此账户已启用双因素认证：登录时需要输入动态验证码。",
    ),
    (
        "totp.off",
        "No second factor yet. Turn one on to protect this account.",
        "尚未启用双因素认证。启用后可保护此账户。",
    ),
    (
        "totp.start",
        "Set up an authenticator app",
        "设置身份验证器应用",
    ),
    (
        "totp.secret",
        "Secret key (type it into your authenticator app)",
        "密钥（输入到身份验证器应用中）",
    ),
    (
        "totp.uri",
        "Or add this otpauth URI",
        "或添加此 otpauth URI",
    ),
    (
        "totp.shown_once",
        "Shown once: it is not displayed again.",
        "仅显示一次，之后不再显示。",
    ),
    ("totp.code", "Code from the app", "应用中的验证码"),
    ("totp.confirm", "Turn on", "启用"),
    ("error.title", "Something went wrong", "出错了"),
    ("error.forbidden", "Not allowed", "无权访问"),
    ("error.not_found", "Not found", "未找到"),
    (
        "error.server",
        "The hub could not do this",
        "服务暂时无法完成此操作",
    ),
    ("error.refused", "Refused", "请求被拒绝"),
    (
        "error.csrf",
        "This form is out of date or did not come from this console. Go back, reload the page and send it again.",
        "此表单已过期或并非来自本控制台。请返回、刷新页面后重新提交。",
    ),
    (
        "error.too_large",
        "The form is too large.",
        "表单内容过大。",
    ),
    (
        "error.language",
        "Unknown language: use en or zh.",
        "未知语言：请使用 en 或 zh。",
    ),
    ("error.no_page", "There is no such page.", "没有这个页面。"),
    ("error.back", "Back to deployments", "返回部署列表"),
    ("common.cancel", "Cancel", "取消"),
    ("common.confirm", "Confirm", "确认"),
    ("common.save", "Save", "保存"),
    ("common.none", "None", "无"),
    ("common.yes", "Yes", "是"),
    ("common.no", "No", "否"),
    ("common.next", "Next page", "下一页"),
    ("common.download", "Download", "下载"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t("…")` key in the console's templates and code, found by
    /// reading them as text.
    fn used_keys() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![root.join("templates/console"), root.join("src/console")];
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
        let mut keys = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, _) in text.match_indices("t(\"") {
                let rest = &text[i + 3..];
                let key = &rest[..rest.find('"').unwrap()];
                if key.contains('.') || key == "brand" {
                    keys.push(key.to_owned());
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    #[test]
    fn every_key_used_has_english_and_chinese_text() {
        let keys = used_keys();
        assert!(keys.len() > 40, "found only {} keys", keys.len());
        let missing: Vec<_> = keys
            .iter()
            .filter(|k| !texts().contains_key(k.as_str()))
            .collect();
        assert!(missing.is_empty(), "keys without text: {missing:?}");
        for (key, (en, zh)) in texts() {
            assert!(!en.is_empty() && !zh.is_empty(), "{key} lacks a text");
        }
    }

    #[test]
    fn no_key_is_defined_twice() {
        let all: Vec<&str> = TABLES
            .iter()
            .flat_map(|t| t.iter().map(|(k, _, _)| *k))
            .collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len(), "a key is in two tables");
    }

    #[test]
    fn the_language_comes_from_the_switch_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::of(&headers), Lang::En);
        headers.insert("cookie", "mf_lang=zh".parse().unwrap());
        assert_eq!(Lang::of(&headers), Lang::Zh);
        assert_eq!(Lang::Zh.t("nav.billing"), "账单");
        headers.insert("cookie", "mf_lang=fr".parse().unwrap());
        assert_eq!(Lang::of(&headers), Lang::En);
    }
}
