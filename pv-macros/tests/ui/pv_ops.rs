// #[pv_ops]: every way an impl or the attribute's options can be wrong.
#![allow(dead_code)]

trait IrqOps {
    fn save_fl() -> u64;
    fn restore_fl(flags: u64);
    fn irq_disable();
}

trait TimeOps {
    fn now() -> u64;
    unsafe fn arm(deadline: *mut u64, at: u64) -> u64;
}

trait ClockOps {
    fn now() -> u64;
}

trait WideOps {
    fn seven(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64);
    fn big() -> u128;
}

struct Guest;

// Two ops missing: one error naming both, at the trait.
#[pv_macros::pv_ops(spec = "specs/mini.toml")]
impl IrqOps for Guest {
    fn save_fl() -> u64 {
        0
    }
}

// A trait the spec has no table for.
#[pv_macros::pv_ops(spec = "specs/mini.toml")]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

// A table the spec does not have.
#[pv_macros::pv_ops(spec = "specs/mini.toml", table = "clock")]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

// An unknown option.
#[pv_macros::pv_ops(spec = "specs/mini.toml", tabel = "time")]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

// An option given twice.
#[pv_macros::pv_ops(spec = "specs/mini.toml", table = "time", table = "time")]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

// No spec.
#[pv_macros::pv_ops]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

// Not a trait impl.
#[pv_macros::pv_ops(spec = "specs/mini.toml")]
impl Guest {
    fn now() -> u64 {
        0
    }
}

// Callee-save ops a thunk cannot carry: a stack argument, a result wider than rax.
#[pv_macros::pv_ops(spec = "specs/mini.toml")]
impl WideOps for Guest {
    fn seven(_: u64, _: u64, _: u64, _: u64, _: u64, _: u64, _: u64) {}
    fn big() -> u128 {
        0
    }
}

// Thunks are associated functions of the type: it must be a named type.
#[pv_macros::pv_ops(spec = "specs/mini.toml")]
impl TimeOps for (u8,) {
    fn now() -> u64 {
        0
    }
    unsafe fn arm(_: *mut u64, _: u64) -> u64 {
        0
    }
}

// A spec with problems, and one that is not there.
#[pv_macros::pv_ops(spec = "specs/bad.toml")]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

#[pv_macros::pv_ops(spec = "specs/gone.toml")]
impl ClockOps for Guest {
    fn now() -> u64 {
        0
    }
}

fn main() {}
