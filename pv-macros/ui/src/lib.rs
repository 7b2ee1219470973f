//! The compile-fail tests of `pv-macros` (`tests/ui.rs`, `tests/ui/`): a crate of its own so
//! that trybuild builds only what they use. Nothing here but the tests.
