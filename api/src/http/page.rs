//! Pagination of list endpoints: `?limit=&cursor=`. A cursor is opaque to
//! clients (base64url of the last item's sort key); a page holds the items
//! after it in a stable order, so pages neither repeat nor skip items when
//! others are added meanwhile.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Sorts `items` by `key` and returns the page `params` asks for, with the
/// cursor of the next page if there is one.
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    params: &PageParams,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = match &params.cursor {
        None => None,
        Some(cursor) => Some(
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("cursor is not one this API returned; start without it")
                })?,
        ),
    };
    items.sort_by_cached_key(&key);
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_ref().is_none_or(|a| key(item) > *a))
        .take(limit as usize + 1)
        .collect();
    let next = if page.len() > limit as usize {
        page.truncate(limit as usize);
        page.last().map(|last| URL_SAFE_NO_PAD.encode(key(last)))
    } else {
        None
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let items: Vec<u32> = (0..7).rev().collect();
        let key = |n: &u32| format!("{n:03}");
        let mut params = PageParams {
            limit: Some(3),
            cursor: None,
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = paginate(items.clone(), key, &params).unwrap();
            seen.extend(page);
            match next {
                Some(c) => params.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        for (limit, cursor) in [(Some(0), None), (Some(501), None), (None, Some("%%%"))] {
            let params = PageParams {
                limit,
                cursor: cursor.map(str::to_owned),
            };
            let err = paginate(vec![1], |n: &i32| n.to_string(), &params).unwrap_err();
            assert_eq!(err.status().as_u16(), 400);
        }
    }
}
