//! Benchmarks of the generated lguest ABI (issue 6): see `BENCHMARKS.md` at the repository
//! root for the method, the machine, the numbers and how to reproduce each table.
//!
//! This library holds what the benches (`benches/`), the callgrind probe
//! (`src/bin/callgrind_probe.rs`) and the size listing (`size.sh`) share:
//!
//! - [`dispatch`]: a do-nothing host, and the hand-written function-pointer table and
//!   `HashMap` registry the generated dispatch is compared with;
//! - [`ring`]: the async ring with only the generated parts (producer, layout, dispatch);
//! - [`fixture`]: the guest crate over the reference host in process;
//! - [`probes`]: unmangled out-of-line functions for callgrind and `nm`.

pub mod dispatch;
pub mod fixture;
pub mod probes;
pub mod ring;
