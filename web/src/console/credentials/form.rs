//! The add-or-replace form of the source credentials page: the kinds of
//! credential it offers, the fields each kind has and the variable each
//! becomes, and reading a submitted form into the credential's keys (or
//! why it cannot make them) without ever keeping a value outside a
//! [`Secret`].

use std::collections::BTreeMap;

use modelfleet_api::secret::Secret;

use super::super::i18n::Lang;
use super::text::TEXT;

// ---------------------------------------------------------------- kinds

/// What a credential is for: each kind is a set of the variables `modelfleet
/// fetch` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    ObjectStore,
    HuggingFace,
    ModelScope,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::ObjectStore, Kind::HuggingFace, Kind::ModelScope];

    /// The value of the form's `kind` select.
    pub(super) fn code(self) -> &'static str {
        match self {
            Kind::ObjectStore => "object-store",
            Kind::HuggingFace => "hugging-face",
            Kind::ModelScope => "modelscope",
        }
    }

    pub(super) fn from_code(code: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    fn label(self, lang: Lang) -> &'static str {
        match self {
            Kind::ObjectStore => lang.t(TEXT, "credentials.kind_object_store"),
            Kind::HuggingFace => lang.t(TEXT, "credentials.kind_hugging_face"),
            Kind::ModelScope => lang.t(TEXT, "credentials.kind_modelscope"),
        }
    }
}

/// One field of the form: a secret, or a setting (an endpoint, a region)
/// that is not.
struct Field {
    /// Its `name` in the form.
    form: &'static str,
    /// The variable it becomes.
    variable: &'static str,
    kind: Kind,
    required: bool,
}

const FIELDS: [Field; 9] = [
    Field {
        form: "access_key_id",
        variable: "AWS_ACCESS_KEY_ID",
        kind: Kind::ObjectStore,
        required: true,
    },
    Field {
        form: "secret_access_key",
        variable: "AWS_SECRET_ACCESS_KEY",
        kind: Kind::ObjectStore,
        required: true,
    },
    Field {
        form: "session_token",
        variable: "AWS_SESSION_TOKEN",
        kind: Kind::ObjectStore,
        required: false,
    },
    Field {
        form: "endpoint",
        variable: "AWS_ENDPOINT_URL",
        kind: Kind::ObjectStore,
        required: false,
    },
    Field {
        form: "region",
        variable: "AWS_REGION",
        kind: Kind::ObjectStore,
        required: false,
    },
    Field {
        form: "hf_token",
        variable: "HF_TOKEN",
        kind: Kind::HuggingFace,
        required: true,
    },
    Field {
        form: "hf_endpoint",
        variable: "HF_ENDPOINT",
        kind: Kind::HuggingFace,
        required: false,
    },
    Field {
        form: "modelscope_token",
        variable: "MODELSCOPE_API_TOKEN",
        kind: Kind::ModelScope,
        required: true,
    },
    Field {
        form: "modelscope_endpoint",
        variable: "MODELSCOPE_ENDPOINT",
        kind: Kind::ModelScope,
        required: false,
    },
];

impl Field {
    fn label(&self, lang: Lang) -> &'static str {
        match self.form {
            "access_key_id" => lang.t(TEXT, "credentials.access_key_id"),
            "secret_access_key" => lang.t(TEXT, "credentials.secret_access_key"),
            "session_token" => lang.t(TEXT, "credentials.session_token"),
            "hf_token" => lang.t(TEXT, "credentials.hf_token"),
            "endpoint" => lang.t(TEXT, "credentials.endpoint"),
            "region" => lang.t(TEXT, "credentials.region"),
            "hf_endpoint" => lang.t(TEXT, "credentials.hf_endpoint"),
            "modelscope_endpoint" => lang.t(TEXT, "credentials.modelscope_endpoint"),
            _ => lang.t(TEXT, "credentials.modelscope_token"),
        }
    }
}

// ---------------------------------------------------------------- the form

/// The add-or-replace form as sent. Its values are [`Secret`]s from the
/// moment they are read, and its `Debug` names no value.
pub(super) struct CredentialForm {
    pub(super) tenant: Option<String>,
    pub(super) name: String,
    pub(super) kind: String,
    /// The secret fields that were filled in, by form name, trimmed.
    values: BTreeMap<&'static str, Secret>,
}

impl std::fmt::Debug for CredentialForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialForm")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("filled", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CredentialForm {
    /// Reads a form body; fields it does not know are left alone.
    pub(super) fn read(body: &[u8]) -> CredentialForm {
        let mut form = CredentialForm {
            tenant: None,
            name: String::new(),
            kind: String::new(),
            values: BTreeMap::new(),
        };
        for (field, value) in form_urlencoded_pairs(body) {
            match field.as_str() {
                "tenant" => form.tenant = Some(value),
                "name" => form.name = value.trim().to_owned(),
                "kind" => form.kind = value.trim().to_owned(),
                other => {
                    if let Some(known) = FIELDS.iter().find(|f| f.form == other) {
                        let value = Secret::new(value);
                        let trimmed = value.expose().trim();
                        if !trimmed.is_empty() {
                            form.values.insert(known.form, Secret::new(trimmed));
                        }
                    }
                }
            }
        }
        form
    }

    /// The credential's variables, or why the form cannot make them
    /// (in the viewer's language; it names fields, never a value).
    pub(super) fn keys(&self, lang: Lang) -> Result<BTreeMap<String, Secret>, String> {
        let Some(kind) = Kind::from_code(&self.kind) else {
            return Err(lang.t(TEXT, "credentials.bad_kind").to_owned());
        };
        if self.name.is_empty() {
            return Err(lang.t(TEXT, "credentials.name_missing").to_owned());
        }
        let other: Vec<&str> = FIELDS
            .iter()
            .filter(|f| f.kind != kind && self.values.contains_key(f.form))
            .map(|f| f.label(lang))
            .collect();
        if !other.is_empty() {
            return Err(format!(
                "{} {}",
                lang.t(TEXT, "credentials.other_kind"),
                other.join(", ")
            ));
        }
        let missing: Vec<&str> = FIELDS
            .iter()
            .filter(|f| f.kind == kind && f.required && !self.values.contains_key(f.form))
            .map(|f| f.label(lang))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} — {} {}",
                kind.label(lang),
                lang.t(TEXT, "credentials.missing"),
                missing.join(", ")
            ));
        }
        Ok(FIELDS
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| {
                self.values
                    .get(f.form)
                    .map(|v| (f.variable.to_owned(), Secret::new(v.expose())))
            })
            .collect())
    }
}

/// `a=1&b=2` as pairs, as a browser encodes a form. Never fails: what is
/// not valid UTF-8 becomes replacement characters, which the hub refuses
/// in a key without quoting it.
fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> CredentialForm {
        CredentialForm::read(body.as_bytes())
    }

    #[test]
    fn each_kind_gives_exactly_its_variables() {
        let keys = form(
            "name=store&kind=object-store&access_key_id=AKIA0000ABCD&\
             secret_access_key=%20wJalr%2Bsecret%0A&session_token=",
        )
        .keys(Lang::En)
        .unwrap();
        let shown: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(
            shown,
            [
                ("AWS_ACCESS_KEY_ID", "AKIA0000ABCD"),
                ("AWS_SECRET_ACCESS_KEY", "wJalr+secret"),
            ]
        );
        let keys = form("name=hub&kind=hugging-face&hf_token=hf_abcdefgh")
            .keys(Lang::En)
            .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["HF_TOKEN"]);
        let keys = form("name=ms&kind=modelscope&modelscope_token=ms-abcdefgh")
            .keys(Lang::En)
            .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["MODELSCOPE_API_TOKEN"]);
        // A private store's endpoint and region travel with its keys.
        let keys = form(
            "name=minio&kind=object-store&access_key_id=AKIA0000ABCD&\
             secret_access_key=wJalr%2Bsecret&endpoint=http%3A%2F%2F10.0.0.5%3A9000&region=us-east-1",
        )
        .keys(Lang::En)
        .unwrap();
        assert_eq!(
            keys.get("AWS_ENDPOINT_URL").map(Secret::expose),
            Some("http://10.0.0.5:9000")
        );
        assert_eq!(
            keys.get("AWS_REGION").map(Secret::expose),
            Some("us-east-1")
        );
        let keys = form("name=hub&kind=hugging-face&hf_token=hf_abcdefgh&hf_endpoint=https%3A%2F%2Fhf-mirror.com")
            .keys(Lang::En)
            .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["HF_ENDPOINT", "HF_TOKEN"]);
    }

    #[test]
    fn a_form_that_cannot_make_a_credential_says_why_without_its_values() {
        let refused = |body: &str| form(body).keys(Lang::En).unwrap_err();
        assert!(refused("name=x&kind=ftp&hf_token=hf_abcdefgh").contains("Choose"));
        assert!(refused("name=&kind=hugging-face&hf_token=hf_abcdefgh").contains("name"));
        let missing = refused("name=x&kind=object-store&access_key_id=AKIA0000ABCD");
        assert!(missing.contains("Secret access key"), "{missing}");
        assert!(!missing.contains("AKIA0000ABCD"), "{missing}");
        let mixed = refused("name=x&kind=hugging-face&hf_token=hf_abcdefgh&access_key_id=AKIAXYZW");
        assert!(mixed.contains("Access key ID"), "{mixed}");
        assert!(!mixed.contains("AKIAXYZW") && !mixed.contains("hf_abcdefgh"));
        let debug = format!(
            "{:?}",
            form("name=x&kind=hugging-face&hf_token=hf_abcdefgh")
        );
        assert!(!debug.contains("hf_abcdefgh"), "{debug}");
        // In Chinese too.
        assert!(
            !form("name=x&kind=ftp")
                .keys(Lang::Zh)
                .unwrap_err()
                .contains("missing text")
        );
    }
}
