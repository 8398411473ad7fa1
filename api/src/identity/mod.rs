//! Who is asking, and what they may do: roles, the acting principal, the
//! tenant scope every lookup is confined to, password hashing and the API
//! key format. Pure apart from the CPU-heavy password hash, which runs on a
//! blocking thread; the rows themselves live in `store/`.

mod actor;
pub mod api_key;
pub mod password;
mod role;
pub mod totp;

pub use actor::{Actor, Denied, Origin, Principal, Scope};
pub use role::{Permission, Role, UnknownRole};
