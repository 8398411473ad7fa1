//! The web console: askama page structs and templates, forms and charts. It
//! calls the hub's services in-process and never runs SQL itself.
//!
//! Nothing lives here yet: the console is built by the issue "The web
//! console". Until then the crate exports nothing.
