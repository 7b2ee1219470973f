//! Properties of the generated lguest code over arbitrary input: dispatch never panics and
//! blames the right argument; patch() never writes outside the bytes it reports, and the
//! relocation it writes points at the field.

use proptest::prelude::*;

use host_stubs::memory::GuestMem;
use pv_tests::lguest::host::{
    DispatchError, GuestMemory, LguestDefaultHost, MemViolation, OutsideMemory, Scratch, dispatch,
};
use pv_tests::lguest::numbers::{ARG_REGS, Hypercall};
use pv_tests::lguest::patch::{RelocKind, TEMPLATES};

/// Counts handler runs; accepts everything.
#[derive(Default)]
struct Count(usize);

/// Every call the spec has goes to `unhandled`: `Count` follows the spec without an edit.
impl LguestDefaultHost for Count {
    type Error = ();

    fn unhandled(&mut self, _call: Hypercall) -> Result<u64, ()> {
        self.0 += 1;
        Ok(0)
    }
}

/// Guest memory that is zero everywhere: every string in it is empty.
struct Zeros;

impl GuestMemory for Zeros {
    fn read(&self, _gpa: u64, buf: &mut [u8]) -> Result<(), OutsideMemory> {
        buf.fill(0);
        Ok(())
    }
    fn write(&self, _gpa: u64, _buf: &[u8]) -> Result<(), OutsideMemory> {
        Ok(())
    }
    fn contains(&self, _gpa: u64, _len: u64) -> bool {
        true
    }
}

/// Two pages of guest memory: zeros (empty strings), then `x`s up to the end (no NUL).
fn two_pages() -> GuestMem {
    let m = GuestMem::new(0x2000).expect("maps guest memory");
    m.write(0x1000, &[b'x'; 0x1000]).expect("inside");
    m
}

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..4,
        Just(8u64),
        Just(0x1000),
        Just(0xffff),
        Just(0xffff_ffff),
        Just(0x1_0000_0000),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn dispatch_never_panics_and_blames_the_right_argument(
        nr in prop_oneof![0u64..24, any::<u64>()],
        args in proptest::array::uniform4(interesting_u64()),
    ) {
        let args: [u64; ARG_REGS] = args;
        let mut h = Count::default();
        let (mem, mut scratch) = (two_pages(), Box::<Scratch>::default());
        match dispatch(&mut h, &mem, &mut scratch, nr, args) {
            Ok(v) => {
                prop_assert_eq!(v, 0);
                prop_assert_eq!(h.0, 1);
                prop_assert!(Hypercall::try_from(nr).is_ok());
            }
            Err(DispatchError::UnknownHypercall { nr: n }) => {
                prop_assert_eq!(n, nr);
                prop_assert!(Hypercall::try_from(nr).is_err());
                prop_assert_eq!(h.0, 0);
            }
            Err(DispatchError::BadArgument(b)) => {
                prop_assert_eq!(b.call.nr(), nr);
                prop_assert!(b.index < b.call.arg_count());
                prop_assert_eq!(b.arg, b.call.arg_names()[b.index]);
                prop_assert_eq!(b.value, args[b.index]);
                prop_assert_eq!(h.0, 0, "the handler never runs on a bad argument");
                // The message names the call, the argument and the value.
                let msg = b.to_string();
                let needle = format!("argument `{}` = {:#x}", b.arg, b.value);
                prop_assert!(msg.contains(b.call.name()) && msg.contains(&needle), "{}", msg);
            }
            Err(DispatchError::BadMemory(b)) => {
                // A string argument, named with the address its register holds.
                prop_assert_eq!(b.call.nr(), nr);
                let index = b.call.arg_index(b.arg).expect("a memory argument with a register");
                prop_assert_eq!(b.addr, args[index]);
                prop_assert_eq!(h.0, 0, "the handler never runs on bad memory");
                match b.violation {
                    // Past the end of the two pages, or a wrapping address.
                    MemViolation::Outside { addr, len } => {
                        prop_assert!(addr >= 0x2000 || addr.checked_add(len).is_none());
                    }
                    // In the page of `x`s, with room for the whole maximum before its end.
                    MemViolation::NoNul { max } => {
                        prop_assert!((0x1000..0x2000 - max).contains(&b.addr));
                    }
                    v => prop_assert!(false, "{v}"),
                }
                let msg = b.to_string();
                prop_assert!(msg.contains(b.call.name()) && msg.contains(&format!("argument `{}` at {:#x}", b.arg, b.addr)), "{}", msg);
            }
            Err(DispatchError::Host(())) => prop_assert!(false, "Count accepts everything"),
        }
    }

    #[test]
    fn patch_writes_only_what_it_reports_and_relocates_to_the_field(
        t in 0..TEMPLATES.len(),
        len in 0usize..16,
        site_addr in prop_oneof![0u64..0x10_0000, 0xffff_ffff_8000_0000u64..0xffff_ffff_8010_0000, any::<u64>()],
        page in prop_oneof![0u64..0x10_0000, 0xffff_ffff_8000_0000u64..0xffff_ffff_8010_0000, any::<u64>()],
    ) {
        let tpl = TEMPLATES[t];
        let mut site = vec![0xccu8; len];
        match tpl.apply(&mut site, site_addr, page) {
            None => prop_assert!(site.iter().all(|b| *b == 0xcc), "a site that is not patched is untouched"),
            Some(n) => {
                prop_assert!(n <= len);
                prop_assert!(site[n..].iter().all(|b| *b == 0xcc), "nothing past the reported length");
                let form = tpl.forms.iter().find(|f| f.bytes.len() == n).expect("a form of that length");
                for r in form.relocs {
                    let got = i32::from_le_bytes(site[r.at..r.at + 4].try_into().unwrap());
                    let field = page.wrapping_add(r.field_offset);
                    let want = match r.kind {
                        RelocKind::Rel32 => field.wrapping_sub(site_addr.wrapping_add(n as u64)),
                        RelocKind::Abs32 => field,
                        RelocKind::Abs64 => unreachable!("the lguest templates use 32-bit forms"),
                    };
                    prop_assert_eq!(i64::from(got) as u64, want);
                }
                // The non-relocated bytes are the form's.
                for (i, b) in form.bytes.iter().enumerate() {
                    if !form.relocs.iter().any(|r| (r.at..r.at + 4).contains(&i)) {
                        prop_assert_eq!(site[i], *b);
                    }
                }
            }
        }
        // A site as long as the template's site_len is always patched when the field is
        // near the site.
        if len >= tpl.site_len && page.abs_diff(site_addr) < 0x1000_0000 && site_addr < 0x1000_0000 {
            prop_assert!(tpl.apply(&mut vec![0; len], site_addr, page).is_some());
        }
    }
}

proptest! {
    /// The generated sample arguments pass every check of their call, in both ABIs and
    /// the fixture with every kind of constraint: what tests and benchmarks drive dispatch
    /// with.
    #[test]
    fn sample_args_always_decode(seed in any::<u64>()) {
        for h in Hypercall::ALL {
            let args = pv_tests::lguest::host::sample_args(h, seed);
            // Memory arguments read from all-zero memory: empty strings, which pass.
            let mut scratch = Box::<Scratch>::default();
            let call = pv_tests::lguest::host::decode(&Zeros, &mut scratch, h.nr(), args);
            prop_assert!(call.is_ok(), "{h}: {args:x?} -> {call:?}");
            prop_assert_eq!(call.map(|c| c.raw_args()).ok(), Some(args));
        }
        for h in pv_tests::kvm::numbers::Hypercall::ALL {
            let args = pv_tests::kvm::host::sample_args(h, seed);
            prop_assert!(pv_tests::kvm::host::decode(h.nr(), args).is_ok(), "{h}: {args:x?}");
        }
        for h in pv_tests::names::numbers::Hypercall::ALL {
            let args = pv_tests::names::host::sample_args(h, seed);
            prop_assert!(pv_tests::names::host::decode(h.nr(), args).is_ok(), "{h}: {args:x?}");
        }
    }
}
