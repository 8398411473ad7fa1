//! OpenAPI schemas for the core's types that the API sends and receives
//! as they are (their serde form is the wire form). The core may not
//! depend on utoipa, so each is mirrored here as a schema-only type and
//! fields say `#[schema(value_type = …)]`. A test checks that every
//! mirrored name parses as the core type, so the two cannot drift apart.
// Schema-only: never constructed, only described.
#![allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]

use utoipa::ToSchema;

/// A cloud a cluster runs in.
#[derive(ToSchema)]
#[schema(as = Cloud)]
pub enum CloudSchema {
    aws,
    aliyun,
    tencentcloud,
    huaweicloud,
    generic,
}

/// Whether spot capacity may be used: `never` (default), `allowed`
/// (competes on price) or `preferred` (ranked ahead of on-demand).
#[derive(ToSchema)]
#[schema(as = SpotPolicy)]
pub enum SpotPolicySchema {
    never,
    allowed,
    preferred,
}

#[derive(ToSchema)]
#[schema(as = Role)]
pub enum RoleSchema {
    #[schema(rename = "platform-admin")]
    platform_admin,
    #[schema(rename = "tenant-admin")]
    tenant_admin,
    developer,
    auditor,
    viewer,
}

#[derive(ToSchema)]
#[schema(as = Currency)]
pub enum CurrencySchema {
    USD,
    CNY,
}

/// Weight precision: `auto` picks the published one if it fits, else the
/// next of bf16, fp8, int8, int4.
#[derive(ToSchema)]
#[schema(as = PrecisionChoice)]
pub enum PrecisionChoiceSchema {
    auto,
    bf16,
    fp8,
    int8,
    int4,
}

/// A weight precision a plan uses.
#[derive(ToSchema)]
#[schema(as = Precision)]
pub enum PrecisionSchema {
    bf16,
    fp8,
    int8,
    int4,
}

/// The serving engine: `auto` for whichever the accelerator runs.
#[derive(ToSchema)]
#[schema(as = RuntimeChoice)]
pub enum RuntimeChoiceSchema {
    auto,
    vllm,
    #[schema(rename = "vllm-ascend")]
    vllm_ascend,
}

/// An exact amount of money: decimal text (up to six decimals) and a
/// currency. Requests may also write it as one string, `"6.88 USD"`.
#[derive(ToSchema)]
#[schema(as = Money)]
pub struct MoneySchema {
    #[schema(example = "6.88")]
    pub amount: String,
    #[schema(value_type = CurrencySchema)]
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use modelfleet_core::crd::RuntimeChoice;
    use modelfleet_core::fleet::Cloud;
    use modelfleet_core::money::Currency;
    use modelfleet_core::planner::SpotPolicy;
    use modelfleet_core::precision::{Precision, PrecisionChoice};
    use serde_json::{Value, json};
    use utoipa::PartialSchema;

    use super::*;
    use crate::identity::Role;

    fn names<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        let Value::Array(values) = &schema["enum"] else {
            panic!("not an enum: {schema}");
        };
        values
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn same<T: serde::de::DeserializeOwned>(mirror: Vec<String>, count: usize) {
        assert_eq!(mirror.len(), count, "{mirror:?}");
        for name in mirror {
            serde_json::from_value::<T>(json!(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn mirrors_name_exactly_the_core_values() {
        same::<Cloud>(names::<CloudSchema>(), Cloud::ALL.len());
        same::<SpotPolicy>(names::<SpotPolicySchema>(), 3);
        same::<Role>(names::<RoleSchema>(), Role::ALL.len());
        same::<Currency>(names::<CurrencySchema>(), Currency::ALL.len());
        same::<PrecisionChoice>(names::<PrecisionChoiceSchema>(), Precision::ALL.len() + 1);
        same::<Precision>(names::<PrecisionSchema>(), Precision::ALL.len());
        same::<RuntimeChoice>(names::<RuntimeChoiceSchema>(), 3);
    }
}
