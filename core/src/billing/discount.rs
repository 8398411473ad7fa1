//! Negotiated discounts: a percentage off the list amount, for all of a
//! tenant's usage or for one cloud's.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::BillingError;
use crate::fleet::Cloud;

/// Basis points in 100 %.
pub const FULL_BASIS_POINTS: u32 = 10_000;

/// What a discount covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscountScope {
    All,
    Cloud(Cloud),
}

impl fmt::Display for DiscountScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscountScope::All => f.write_str("all clouds"),
            DiscountScope::Cloud(c) => write!(f, "cloud {c}"),
        }
    }
}

/// A percentage off, in basis points: 1250 is 12.50 %. Basis points keep
/// the percentage an integer, so applying it stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discount {
    pub scope: DiscountScope,
    pub percent_basis_points: u32,
}

impl Discount {
    pub fn new(scope: DiscountScope, percent_basis_points: u32) -> Result<Self, BillingError> {
        let discount = Discount {
            scope,
            percent_basis_points,
        };
        discount.validate()?;
        Ok(discount)
    }

    /// 0 to 10 000 basis points (0 % to 100 %).
    pub fn validate(&self) -> Result<(), BillingError> {
        if self.percent_basis_points > FULL_BASIS_POINTS {
            return Err(BillingError::DiscountOutOfRange {
                scope: self.scope.to_string(),
                basis_points: self.percent_basis_points,
            });
        }
        Ok(())
    }
}

/// One tenant's discounts: at most one per scope. The most specific one
/// applies to a charge: a cloud's own discount replaces (does not add to)
/// the all-clouds one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discounts {
    all: Option<u32>,
    by_cloud: Vec<(Cloud, u32)>,
}

impl Discounts {
    /// No discount at all.
    pub fn none() -> Self {
        Discounts::default()
    }

    pub fn new(discounts: impl IntoIterator<Item = Discount>) -> Result<Self, BillingError> {
        let mut set = Discounts::default();
        for d in discounts {
            d.validate()?;
            let taken = match d.scope {
                DiscountScope::All => set.all.replace(d.percent_basis_points).is_some(),
                DiscountScope::Cloud(cloud) => {
                    let taken = set.by_cloud.iter().any(|&(c, _)| c == cloud);
                    set.by_cloud.push((cloud, d.percent_basis_points));
                    taken
                }
            };
            if taken {
                return Err(BillingError::DuplicateDiscount(d.scope.to_string()));
            }
        }
        Ok(set)
    }

    /// Basis points off a charge tied to no cloud (tokens): the
    /// all-clouds discount.
    pub fn basis_points_overall(&self) -> u32 {
        self.all.unwrap_or(0)
    }

    /// Basis points off a charge on `cloud`.
    pub fn basis_points_for(&self, cloud: Cloud) -> u32 {
        self.by_cloud
            .iter()
            .find(|&&(c, _)| c == cloud)
            .map(|&(_, bp)| bp)
            .or(self.all)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_discount_wins_over_the_overall_one() {
        let discounts = Discounts::new([
            Discount::new(DiscountScope::All, 500).unwrap(),
            Discount::new(DiscountScope::Cloud(Cloud::Aws), 1250).unwrap(),
        ])
        .unwrap();
        assert_eq!(discounts.basis_points_for(Cloud::Aws), 1250);
        assert_eq!(discounts.basis_points_for(Cloud::Aliyun), 500);
        assert_eq!(Discounts::none().basis_points_for(Cloud::Aws), 0);
    }

    #[test]
    fn refuses_out_of_range_and_duplicate_discounts() {
        let err = Discount::new(DiscountScope::All, 10_001)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10001") && err.contains("0 and 10000"),
            "{err}"
        );
        Discount::new(DiscountScope::All, 10_000).unwrap();
        let aws = DiscountScope::Cloud(Cloud::Aws);
        let err = Discounts::new([
            Discount::new(aws, 100).unwrap(),
            Discount::new(aws, 200).unwrap(),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("cloud aws"), "{err}");
        let sneaky = Discount {
            scope: DiscountScope::All,
            percent_basis_points: 20_000,
        };
        assert!(Discounts::new([sneaky]).is_err());
    }
}
