//! The fuzz targets' bodies, one function per target, each taking arbitrary bytes and
//! panicking only on a real bug (a broken invariant, or a panic inside the code under test):
//!
//! - [`spec::spec_parse`]: the spec parser and checker on any text, and the generator on
//!   any spec they accept;
//! - [`calls::dispatch`]: the generated decode and dispatch on any call number and
//!   arguments (lguest's strings read from real guest memory);
//! - [`memory::memory_decode`]: the generated decode of arguments in guest memory (every
//!   kind the format has) over any memory size, contents and registers;
//! - [`calls::host_calls`]: the reference host's whole hypercall handling over any call
//!   sequence and ring contents, with random memory sizes, shared-page placements and page
//!   faults;
//! - [`shadow::shadow_model`]: the shadow page tables against an independent model of what
//!   the guest's tables let it map.
//!
//! `fuzz/` (cargo-fuzz, nightly) feeds them libFuzzer's inputs; `tests/stable.rs` feeds them
//! a deterministic pseudo-random stream on stable, for a bounded count, on every CI run.

pub mod calls;
pub mod input;
pub mod memory;
pub mod shadow;
pub mod spec;

pub use input::Input;
