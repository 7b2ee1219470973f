// pv_call!: unknown table or op, wrong arguments, bad options, bad spec, a site too long
// for its record.

static SLOT: pv_sites::Slot = pv_sites::Slot::new(core::ptr::null());

fn main() {
    unsafe {
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, irq.save_f());
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, cpu.save_fl());
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, irq.restore_fl());
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, irq.save_fl(1, 2));
        pv_macros::pv_call!(spec = "specs/mini.toml", slots = SLOT, irq.save_fl());
        pv_macros::pv_call!(spec = "specs/mini.toml", spec = "specs/mini.toml", irq.save_fl());
        pv_macros::pv_call!(spec = "specs/mini.toml", irq.save_fl());
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT);
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, irq.save_fl(), irq.save_fl());
        pv_macros::pv_call!(spec = "specs/bad.toml", slot = SLOT, irq.save_fl());
        pv_macros::pv_call!(spec = "specs/gone.toml", slot = SLOT, irq.save_fl());
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, 42);
        pv_macros::pv_call!(spec = "specs/mini.toml", slot = SLOT, wide.seven(1, 2, 3, 4, 5, 6, 7));
        pv_macros::pv_call!(spec = "specs/long_site.toml", slot = SLOT, irq.irq_disable());
    }
}
