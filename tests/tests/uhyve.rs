//! spec/uhyve.toml against the real thing, uhyve-interface 0.3.0 (`v2`): every generated
//! struct has its type's size, alignment and field offsets, every call number is its
//! `HypercallAddress`, and every address the crate defines is described or listed as not
//! (yet) describable; then an end-to-end run where the generated guest wrappers for serial
//! write, file open/write/read/close and exit are served, in process, by the generated
//! host over host-stubs' `GuestMem` (which implements the generated `GuestMemory`: see this
//! crate's lib.rs), with the out fields written back.

use std::cell::RefCell;
use std::ffi::CStr;
use std::mem::{align_of, offset_of, size_of};

use host_stubs::memory::GuestMem;
use pv_tests::uhyve::guest::{Translate, Transport, UhyveHypercalls};
use pv_tests::uhyve::host::{self, Scratch, UhyveDefaultHost};
use pv_tests::uhyve::numbers::{self, Hypercall};
use pv_tests::uhyve::structs as ours;
use uhyve_interface::v2::HypercallAddress;
use uhyve_interface::v2::parameters as theirs;

/// Same size, alignment and offset of every field (listed as `ours = theirs`).
macro_rules! same_layout {
    ($o:ident, $t:ident, [$($of:ident = $tf:ident),* $(,)?]) => {{
        assert_eq!(size_of::<ours::$o>(), size_of::<theirs::$t>(), "size of {}", stringify!($o));
        assert_eq!(align_of::<ours::$o>(), align_of::<theirs::$t>(), "alignment of {}", stringify!($o));
        assert_eq!(ours::$o::SIZE, size_of::<theirs::$t>());
        $(
            assert_eq!(
                offset_of!(ours::$o, $of),
                offset_of!(theirs::$t, $tf),
                "offset of {}.{}", stringify!($o), stringify!($of)
            );
        )*
    }};
}

#[test]
fn structs_match_uhyve_interface_field_for_field() {
    same_layout!(
        SerialWriteBufferParams,
        SerialWriteBufferParams,
        [len = len, buf = buf]
    );
    same_layout!(
        SerialReadBufferParams,
        SerialReadBufferParams,
        [maxlen = maxlen, len = len, buf = buf]
    );
    same_layout!(
        WriteParams,
        WriteParams,
        [len = len, ret = ret, buf = buf, fd = fd]
    );
    same_layout!(
        ReadParams,
        ReadParams,
        [len = len, ret = ret, buf = buf, fd = fd]
    );
    same_layout!(
        OpenParams,
        OpenParams,
        [name = name, flags = flags, mode = mode, ret = ret]
    );
    same_layout!(CloseParams, CloseParams, [fd = fd, ret = ret]);
    same_layout!(
        LseekParams,
        LseekParams,
        [offset = offset, whence = whence, fd = fd]
    );
    same_layout!(UnlinkParams, UnlinkParams, [name = name, ret = ret]);
    same_layout!(
        GetdentParams,
        GetdentParams,
        [fd = fd, buf = buf, len = len, ret = ret]
    );
    same_layout!(GetdentResult, GetdentResult, []);
    same_layout!(StatResult, StatResult, []);
    same_layout!(StatResult, MkdirResult, []);
    same_layout!(Timespec, Timespec, [tv_sec = tv_sec, tv_nsec = tv_nsec]);
    same_layout!(
        FileAttr,
        FileAttr,
        [
            st_dev = st_dev,
            st_ino = st_ino,
            st_nlink = st_nlink,
            st_mode = st_mode,
            st_uid = st_uid,
            st_gid = st_gid,
            st_rdev = st_rdev,
            st_size = st_size,
            st_blksize = st_blksize,
            st_blocks = st_blocks,
            st_atim = st_atim,
            st_mtim = st_mtim,
            st_ctim = st_ctim,
        ]
    );
    same_layout!(
        StatParams,
        StatParams,
        [name = name, kind = kind, attr = attr, ret = ret]
    );
    same_layout!(FstatParams, FstatParams, [fd = fd, attr = attr, ret = ret]);
    same_layout!(
        MkdirParams,
        MkdirParams,
        [path = path, len = len, ret = ret]
    );
    // The enum-typed field holds uhyve's discriminants.
    use pv_tests::uhyve::types::StatKind;
    assert_eq!(StatKind::Stat.raw(), theirs::StatKind::Stat as u32);
    assert_eq!(StatKind::Lstat.raw(), theirs::StatKind::LStat as u32);
}

/// The addresses uhyve-interface defines that the spec cannot describe yet, and why.
const NOT_DESCRIBED: &[(HypercallAddress, &str)] = &[
    (
        HypercallAddress::SerialReadByte,
        "a one-byte MMIO read, not a store",
    ),
    (
        HypercallAddress::SharedMemOpen,
        "no parameter type in uhyve-interface 0.3.0",
    ),
    (
        HypercallAddress::SharedMemClose,
        "no parameter type in uhyve-interface 0.3.0",
    ),
];

#[test]
fn call_numbers_are_uhyve_hypercall_addresses() {
    let pairs = [
        (numbers::EXIT, HypercallAddress::Exit),
        (
            numbers::SERIAL_WRITE_BYTE,
            HypercallAddress::SerialWriteByte,
        ),
        (
            numbers::SERIAL_WRITE_BUFFER,
            HypercallAddress::SerialWriteBuffer,
        ),
        (
            numbers::SERIAL_READ_BUFFER,
            HypercallAddress::SerialReadBuffer,
        ),
        (numbers::FILE_WRITE, HypercallAddress::FileWrite),
        (numbers::FILE_OPEN, HypercallAddress::FileOpen),
        (numbers::FILE_CLOSE, HypercallAddress::FileClose),
        (numbers::FILE_READ, HypercallAddress::FileRead),
        (numbers::FILE_LSEEK, HypercallAddress::FileLseek),
        (numbers::FILE_UNLINK, HypercallAddress::FileUnlink),
        (numbers::GETDENTS, HypercallAddress::Getdents),
        (numbers::FILE_STAT, HypercallAddress::FileStat),
        (numbers::FILE_FSTAT, HypercallAddress::FileFstat),
        (numbers::MKDIR, HypercallAddress::Mkdir),
    ];
    for (nr, addr) in pairs {
        assert_eq!(nr, addr as u64, "{addr:?}");
    }
    assert_eq!(
        pairs.len(),
        Hypercall::ALL.len(),
        "every call of the spec is listed"
    );
    // Every address the crate knows is a call of the spec, or listed as not describable.
    for raw in 0..0x2000u64 {
        let Ok(addr) = HypercallAddress::try_from(raw) else {
            continue;
        };
        let described = Hypercall::try_from(raw).is_ok();
        let skipped = NOT_DESCRIBED.iter().any(|(a, _)| *a == addr);
        assert!(
            described != skipped,
            "{addr:?} ({raw:#x}): described {described}, listed as not {skipped}"
        );
    }
}

/// The guest's view of its own memory: its data lives in `GuestMem`, so its guest-physical
/// address is where the mapping has it.
struct Xlate<'a>(&'a GuestMem);

impl Translate for Xlate<'_> {
    fn pa(&self, va: *const u8) -> u64 {
        self.0
            .gpa_of(va, 1)
            .expect("the guest's data lives in guest memory")
    }
}

/// A uhyve host with a serial line, one in-memory file system and an exit status.
#[derive(Default)]
struct Uhyve {
    serial: Vec<u8>,
    files: Vec<(Vec<u8>, Vec<u8>, usize)>,
    exit: Option<u64>,
}

impl UhyveDefaultHost for Uhyve {
    type Error = String;

    fn exit(&mut self, code: u64) -> Result<(), String> {
        self.exit = Some(code);
        Ok(())
    }

    fn serial_write_buffer(
        &mut self,
        _params: &ours::SerialWriteBufferParams,
        data: &[u8],
    ) -> Result<(), String> {
        self.serial.extend_from_slice(data);
        Ok(())
    }

    fn file_open(&mut self, params: &mut ours::OpenParams, path: &[u8]) -> Result<(), String> {
        self.files.push((path.to_vec(), Vec::new(), 0));
        params.ret = self.files.len() as i32 + 2;
        Ok(())
    }

    fn file_write(&mut self, params: &mut ours::WriteParams, data: &[u8]) -> Result<(), String> {
        let f = self
            .files
            .get_mut((params.fd - 3) as usize)
            .ok_or("bad fd")?;
        f.1.extend_from_slice(data);
        params.ret = data.len() as i64;
        Ok(())
    }

    fn file_read(&mut self, params: &mut ours::ReadParams, data: &mut [u8]) -> Result<(), String> {
        let f = self
            .files
            .get_mut((params.fd - 3) as usize)
            .ok_or("bad fd")?;
        let n = (f.1.len() - f.2).min(data.len());
        data[..n].copy_from_slice(&f.1[f.2..f.2 + n]);
        f.2 += n;
        params.ret = n as i64;
        Ok(())
    }

    fn file_close(&mut self, params: &mut ours::CloseParams) -> Result<(), String> {
        let fd = params.fd;
        params.ret = if (3..3 + self.files.len() as i32).contains(&fd) {
            0
        } else {
            -9
        };
        Ok(())
    }
}

/// The guest's trap: straight into the generated dispatch, as a VMM's MMIO exit handler
/// would call it with the exit's address and the stored value.
struct InProcess<'a> {
    host: RefCell<Uhyve>,
    mem: &'a GuestMem,
    scratch: RefCell<Box<Scratch>>,
}

impl Transport for InProcess<'_> {
    fn hypercall(&self, nr: u64, args: [u64; numbers::ARG_REGS]) -> u64 {
        let r = host::dispatch(
            &mut *self.host.borrow_mut(),
            self.mem,
            &mut self.scratch.borrow_mut(),
            nr,
            args,
        );
        r.unwrap_or_else(|e| panic!("the host refused a call: {e}"))
    }
}

/// `value`, written into guest memory at `gpa`; a pointer to it there.
fn place<T>(mem: &GuestMem, gpa: u64, value: T) -> *mut T {
    let p = mem
        .host_ptr(gpa, size_of::<T>() as u64)
        .expect("inside guest memory")
        .cast::<T>();
    assert!(p.as_ptr().is_aligned());
    // SAFETY: `host_ptr` checked that the range lies inside the mapping, and it is aligned.
    unsafe { p.as_ptr().write(value) };
    p.as_ptr()
}

#[test]
fn guest_wrappers_served_by_the_generated_host_over_guest_mem() {
    let mem = GuestMem::new(1 << 20).expect("maps guest memory");
    let t = InProcess {
        host: RefCell::default(),
        mem: &mem,
        scratch: RefCell::new(Box::default()),
    };
    let x = Xlate(&mem);
    // The guest's data, in guest memory.
    let no_fd = ours::OpenParams {
        flags: 0o101,
        mode: 0o644,
        ret: -1,
        ..ours::OpenParams::ZERO
    };
    let (msg, sp, path, op) = (
        place(&mem, 0x1000, *b"hello, uhyve\n"),
        place(&mem, 0x2000, ours::SerialWriteBufferParams::ZERO),
        place(&mem, 0x3000, *b"/tmp/log\0"),
        place(&mem, 0x3100, no_fd),
    );
    let (data, wp, buf, rp, cp) = (
        place(&mem, 0x4000, *b"0123456789"),
        place(&mem, 0x5000, ours::WriteParams::ZERO),
        place(&mem, 0x6000, [0u8; 16]),
        place(&mem, 0x7000, ours::ReadParams::ZERO),
        place(&mem, 0x8000, ours::CloseParams { fd: 0, ret: 1 }),
    );
    // SAFETY: each pointer is a distinct, aligned, initialised range inside the mapping,
    // which outlives the references; nothing else refers to those bytes (the host writes
    // them only during a call, through the mapping, as a host writes a guest's memory).
    let (msg, sp, path, op, data, wp, buf, rp, cp) = unsafe {
        (
            &*msg, &mut *sp, &*path, &mut *op, &*data, &mut *wp, &mut *buf, &mut *rp, &mut *cp,
        )
    };
    t.serial_write_buffer(&x, sp, msg);
    assert_eq!(
        (sp.len, sp.buf),
        (13, 0x1000),
        "the wrapper filled in the buffer's length and address"
    );

    t.file_open(&x, op, CStr::from_bytes_with_nul(path).unwrap());
    let fd = op.ret;
    wp.fd = fd;
    rp.fd = fd;
    cp.fd = fd;
    assert_eq!(
        fd, 3,
        "the host's `ret` was written back into the guest's struct"
    );

    t.file_write(&x, wp, data);
    assert_eq!(wp.ret, 10);

    t.file_read(&x, rp, &mut buf[..4]);
    assert_eq!(
        (rp.ret, &buf[..4]),
        (4, &b"0123"[..]),
        "the out buffer was written back"
    );
    t.file_read(&x, rp, &mut buf[4..]);
    assert_eq!((rp.ret, &buf[4..10]), (6, &b"456789"[..]));

    t.file_close(&x, cp);
    assert_eq!({ cp.ret }, 0);
    cp.fd = 99;
    t.file_close(&x, cp);
    assert_eq!({ cp.ret }, -9);

    t.exit(7);
    let h = t.host.borrow();
    assert_eq!(h.serial, b"hello, uhyve\n");
    assert_eq!(h.files[0].0, b"/tmp/log");
    assert_eq!(h.files[0].1, b"0123456789");
    assert_eq!(h.exit, Some(7));
}

#[test]
fn a_hostile_uhyve_guest_gets_a_named_error() {
    let mem = GuestMem::new(1 << 16).expect("maps guest memory");
    let mut h = Uhyve::default();
    let mut scratch = Box::<Scratch>::default();
    // A write whose buffer runs off the end of guest memory.
    let wp = ours::WriteParams {
        len: 64,
        buf: (1 << 16) - 8,
        fd: 3,
        ..ours::WriteParams::ZERO
    };
    mem.write(0x100, &wp.to_bytes()).unwrap();
    let e = host::dispatch(&mut h, &mem, &mut scratch, numbers::FILE_WRITE, [0x100]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "hypercall file_write (4352): argument `data` at 0xfff8: 64 bytes at 0xfff8 are outside guest memory"
    );
    // A path with no NUL within PATH_MAX.
    mem.write(0x1000, &[b'a'; 4096]).unwrap();
    let op = ours::OpenParams {
        name: 0x1000,
        ..ours::OpenParams::ZERO
    };
    mem.write(0x200, &op.to_bytes()).unwrap();
    let e = host::dispatch(&mut h, &mem, &mut scratch, numbers::FILE_OPEN, [0x200]).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("argument `path` at 0x1000: not NUL-terminated within 4095 bytes"),
        "{e}"
    );
    // A read longer than the spec's maximum.
    let rp = ours::ReadParams {
        len: 0x10001,
        buf: 0x1000,
        fd: 3,
        ..ours::ReadParams::ZERO
    };
    mem.write(0x300, &rp.to_bytes()).unwrap();
    let e = host::dispatch(&mut h, &mem, &mut scratch, numbers::FILE_READ, [0x300]).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("65537 elements long, more than the maximum 65536"),
        "{e}"
    );
    assert!(h.files.is_empty() && h.exit.is_none(), "no handler ran");
}
