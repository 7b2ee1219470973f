//! Room: the generator's guest-memory part: `[struct.NAME]` tables laid out with C rules
//! (every gap written as `{ pad = N }`, `packed`, `offset`, fields of every allowed type:
//! integers signed and unsigned, aliases, enums, earlier structs, fixed arrays of those,
//! nested; `dir`; `range`/`align` on the unsigned ones), and a hypercall's argument list
//! with memory arguments among its register arguments: `&struct`, `[T]` with `len` from an
//! argument, a struct field or a number, `str`, with `max`, `dir`, `addr`, `utf8`, and
//! `at = "arg.field"` (an address in an earlier struct argument, taking no register).

use std::collections::HashSet;
use std::fmt::Write as _;

use codegen::names::camel;

use super::{Gen, toml_str};

/// Largest struct (codegen's `MAX_STRUCT`) and largest buffer or string in bytes
/// (`MAX_MEM_BYTES`).
const MAX_STRUCT: u64 = 4096;
const MAX_MEM: u64 = 1 << 20;

/// The integer types of struct fields and buffer elements: `(name, bytes, signed)`.
const INTS: [(&str, u64, bool); 8] = [
    ("u8", 1, false),
    ("u16", 2, false),
    ("u32", 4, false),
    ("u64", 8, false),
    ("i8", 1, true),
    ("i16", 2, true),
    ("i32", 4, true),
    ("i64", 8, true),
];

/// A generated `[struct]`, as later tables need it.
pub(crate) struct StructInfo {
    name: String,
    size: u64,
    align: u64,
    /// Every field is `in`: the struct may be nested in another.
    all_in: bool,
    fields: Vec<FieldInfo>,
}

/// A named top-level field.
struct FieldInfo {
    name: String,
    /// `in` or `inout`: the guest passes it, so `len`/`at` may name it.
    reads: bool,
    /// An unsigned integer (or an alias of one): a length.
    len_ok: bool,
    /// A `u64` (or an alias of one): an address.
    addr_ok: bool,
}

/// A field or element type.
struct FType {
    text: String,
    size: u64,
    align: u64,
    /// The largest value, where `range`/`align` may constrain it (unsigned, not an enum).
    cmax: Option<u64>,
    len_ok: bool,
    addr_ok: bool,
}

impl FType {
    /// A nested struct: its name, size and alignment, no value bound, never a length or an
    /// address.
    fn of_struct(s: &StructInfo) -> FType {
        FType {
            text: s.name.clone(),
            size: s.size,
            align: s.align,
            cmax: None,
            len_ok: false,
            addr_ok: false,
        }
    }
}

/// One argument of a call as it is built.
struct Entry {
    parts: Vec<String>,
    /// A buffer whose `len` names a register argument, chosen once the list is complete.
    len_pending: Option<u64>,
    /// A plain integer register argument (a length candidate).
    int_reg: Option<String>,
}

fn max_of(bytes: u64) -> u64 {
    if bytes == 8 {
        u64::MAX
    } else {
        (1u64 << (bytes * 8)) - 1
    }
}

impl Gen<'_> {
    /// A struct-field or element type of at most `room` bytes (`None` when nothing fits);
    /// `nest` allows earlier structs (those whose fields are all `in`) and arrays.
    fn ftype(&mut self, room: u64, depth: u32) -> Option<FType> {
        for _ in 0..8 {
            let t = match self.rng.below(10) {
                4 | 5 if !self.type_defs.is_empty() => {
                    let (name, p, is_enum) = self.rng.pick(&self.type_defs).clone();
                    // An alias of bool is no C type (the checker refuses it).
                    if p == "bool" {
                        continue;
                    }
                    let bytes = match p {
                        "u8" => 1,
                        "u16" => 2,
                        "u32" => 4,
                        _ => 8,
                    };
                    FType {
                        text: name,
                        size: bytes,
                        align: bytes,
                        cmax: (!is_enum).then(|| max_of(bytes)),
                        len_ok: !is_enum,
                        addr_ok: !is_enum && bytes == 8,
                    }
                }
                6 => {
                    let nest: Vec<usize> = (0..self.structs.len())
                        .filter(|&i| self.structs[i].all_in)
                        .collect();
                    if nest.is_empty() {
                        continue;
                    }
                    FType::of_struct(&self.structs[*self.rng.pick(&nest)])
                }
                7 | 8 if depth < 2 => {
                    let Some(e) = self.ftype(room, depth + 1) else {
                        continue;
                    };
                    let most = (room / e.size).min(MAX_STRUCT);
                    if most == 0 {
                        continue;
                    }
                    let n = if self.rng.chance(1, 10) {
                        most
                    } else {
                        self.rng.range(1, most.min(16))
                    };
                    let sp = *self.rng.pick(&["; ", ";", " ; "]);
                    FType {
                        text: format!("[{}{sp}{n}]", e.text),
                        size: e.size * n,
                        align: e.align,
                        cmax: e.cmax,
                        len_ok: false,
                        addr_ok: false,
                    }
                }
                _ => {
                    let (name, bytes, signed) = *self.rng.pick(&INTS);
                    FType {
                        text: name.to_string(),
                        size: bytes,
                        align: bytes,
                        cmax: (!signed).then(|| max_of(bytes)),
                        len_ok: !signed,
                        addr_ok: !signed && bytes == 8,
                    }
                }
            };
            if t.size <= room {
                return Some(t);
            }
        }
        None
    }

    /// Zero to four `[struct.NAME]` tables.
    pub(crate) fn structs(&mut self) {
        let n = self.rng.range(1, 4);
        let mut taken = HashSet::new();
        for _ in 0..n {
            // A struct named like an integer or a `[types]` entry could not be a field's
            // type (the checker refuses it), nor one named `bool` or `str`.
            let name = loop {
                let name = self.fresh(&mut taken, camel);
                let shadowed = INTS.iter().any(|(i, _, _)| *i == name)
                    || name == "bool"
                    || name == "str"
                    || self.type_defs.iter().any(|(t, _, _)| *t == name);
                if !shadowed {
                    break name;
                }
            };
            let packed = self.rng.chance(1, 6);
            let all_in = self.rng.chance(1, 2);
            let nfields = if self.rng.chance(1, 10) {
                self.rng.range(8, 24)
            } else {
                self.rng.range(1, 6)
            };
            let _ = writeln!(self.out, "\n[struct.{name}]");
            let d = self.opt_doc("doc");
            self.line(&d);
            if packed {
                self.line("packed = true");
            } else if self.rng.chance(1, 10) {
                self.line("packed = false");
            }
            let mut lines = Vec::new();
            let mut fields = Vec::new();
            let mut fnames = HashSet::new();
            let (mut cur, mut align) = (0u64, 1u64);
            for k in 0..nfields {
                // Room for the field after its alignment and the struct's tail padding.
                let room = MAX_STRUCT.saturating_sub(cur.div_ceil(8) * 8 + 8);
                if room == 0 {
                    break;
                }
                if k > 0 && self.rng.chance(1, 8) && room > 8 {
                    let p = self.rng.range(1, 8);
                    let line = self.pad(p, cur);
                    lines.push(line);
                    cur += p;
                    continue;
                }
                let room = MAX_STRUCT.saturating_sub(cur.div_ceil(8) * 8 + 8);
                let Some(t) = self.ftype(room, 0) else { break };
                let al = if packed { 1 } else { t.align };
                let at = cur.div_ceil(al) * al;
                if at > cur {
                    let line = self.pad(at - cur, cur);
                    lines.push(line);
                }
                // `_padN` is what padding is called (a field of that name would clash).
                let fname = loop {
                    let f = self.fresh(&mut fnames, |s| s.to_string());
                    if !f.starts_with("_pad") {
                        break f;
                    }
                };
                let dir = if all_in {
                    *self.rng.pick(&["", "", "in"])
                } else {
                    *self.rng.pick(&["", "in", "out", "inout"])
                };
                let mut parts = vec![
                    format!("name = {}", toml_str(&fname)),
                    format!("type = {}", toml_str(&t.text)),
                ];
                if !dir.is_empty() {
                    parts.push(format!("dir = \"{dir}\""));
                }
                if self.rng.chance(1, 3) {
                    let o = self.int(at);
                    parts.push(format!("offset = {o}"));
                }
                if self.rng.chance(1, 3) {
                    parts.push(format!("doc = {}", toml_str(&self.doc_text())));
                }
                if let Some(max) = t.cmax {
                    self.constraints(max, &mut parts);
                }
                self.rng.shuffle(&mut parts[1..]);
                lines.push(format!("{{ {} }}", parts.join(", ")));
                fields.push(FieldInfo {
                    name: fname,
                    reads: dir != "out",
                    len_ok: t.len_ok,
                    addr_ok: t.addr_ok,
                });
                cur = at + t.size;
                align = align.max(al);
            }
            if fields.is_empty() {
                // Nothing fitted (a struct needs a named field): one byte.
                let f = self.fresh(&mut fnames, |s| s.to_string());
                lines.push(format!("{{ name = {}, type = \"u8\" }}", toml_str(&f)));
                fields.push(FieldInfo {
                    name: f,
                    reads: true,
                    len_ok: true,
                    addr_ok: false,
                });
                cur += 1;
            }
            let size = cur.div_ceil(align) * align;
            if size > cur {
                let line = self.pad(size - cur, cur);
                lines.push(line);
            }
            assert!(size <= MAX_STRUCT, "struct {name} fits: {size}");
            self.line("fields = [");
            for l in lines {
                let _ = writeln!(self.out, "  {l},");
            }
            self.line("]");
            self.structs.push(StructInfo {
                name,
                size,
                align,
                all_in: all_in && !fields.iter().any(|f| !f.reads),
                fields,
            });
        }
    }

    /// `{ pad = N }`, at `at`, sometimes with its offset.
    fn pad(&mut self, n: u64, at: u64) -> String {
        let n = self.int(n);
        if self.rng.chance(1, 4) {
            let o = self.int(at);
            format!("{{ pad = {n}, offset = {o} }}")
        } else {
            format!("{{ pad = {n} }}")
        }
    }

    /// A call's arguments: `nregs` that take a register (plain ones and memory arguments
    /// whose register carries the address) and, when an earlier struct argument holds an
    /// address field, some located by `at`.
    pub(crate) fn arg_list(&mut self, nregs: usize) -> Vec<String> {
        let memory = self.allow("memory");
        let nat = if memory && self.rng.chance(1, 3) {
            self.rng.range(1, 2) as usize
        } else {
            0
        };
        let mut order = vec![true; nregs];
        order.extend(vec![false; nat]);
        self.rng.shuffle(&mut order);
        let mut names = HashSet::new();
        let mut entries: Vec<Entry> = Vec::new();
        // Earlier struct arguments: `(name, struct index)`.
        let mut structs: Vec<(String, usize)> = Vec::new();
        for reg in order {
            let addr_fields = self.fields_of(&structs, |f| f.addr_ok);
            if !reg && addr_fields.is_empty() {
                continue;
            }
            // `n` and `_n` read as one name (clippy's duplicate_underscore_argument): the
            // checker refuses arguments that differ only by a leading underscore.
            let an = self.fresh(&mut names, |s| s.trim_start_matches('_').to_string());
            if reg && !(memory && self.rng.chance(1, 3)) {
                let (line, int) = self.arg(&an);
                entries.push(Entry {
                    parts: vec![line],
                    len_pending: None,
                    int_reg: int.then_some(an),
                });
                continue;
            }
            let mut parts = vec![format!("name = {}", toml_str(&an))];
            let mut len_pending = None;
            let kind = self.rng.below(3);
            if kind == 0 && !self.structs.is_empty() {
                let si = self.rng.below(self.structs.len() as u64) as usize;
                parts.push(format!(
                    "type = {}",
                    toml_str(&format!("&{}", self.structs[si].name))
                ));
                structs.push((an.clone(), si));
            } else if kind == 1 {
                let max = match self.rng.below(4) {
                    0 => 1,
                    1 => MAX_MEM - 1,
                    _ => self.rng.range(1, 4096),
                };
                let m = self.number(max);
                parts.push("type = \"str\"".into());
                parts.push(format!("max = {m}"));
                match self.rng.below(3) {
                    0 => parts.push("utf8 = true".into()),
                    1 => parts.push("utf8 = false".into()),
                    _ => {}
                }
                if self.rng.chance(1, 4) {
                    parts.push("dir = \"in\"".into());
                }
            } else {
                let Some(e) = self.element() else { continue };
                parts.push(format!("type = {}", toml_str(&format!("[{}]", e.text))));
                let most = MAX_MEM / e.size;
                let len_fields = self.fields_of(&structs, |f| f.len_ok);
                match self.rng.below(3) {
                    0 if !len_fields.is_empty() => {
                        let f = self.rng.pick(&len_fields).clone();
                        parts.push(format!("len = {}", toml_str(&f)));
                        let m = self.buffer_max(most);
                        parts.push(format!("max = {m}"));
                    }
                    1 => len_pending = Some(most),
                    _ => {
                        let n = if self.rng.chance(1, 8) {
                            most
                        } else {
                            self.rng.range(1, most.min(64))
                        };
                        let n = self.int(n);
                        parts.push(format!("len = {n}"));
                    }
                }
                let dir = *self.rng.pick(&["", "in", "out", "inout"]);
                if !dir.is_empty() {
                    parts.push(format!("dir = \"{dir}\""));
                }
            }
            match self.rng.below(4) {
                0 => parts.push("addr = \"physical\"".into()),
                1 => parts.push("addr = \"virtual\"".into()),
                _ => {}
            }
            if !reg {
                let f = self.rng.pick(&addr_fields).clone();
                parts.push(format!("at = {}", toml_str(&f)));
            }
            if self.rng.chance(1, 3) {
                parts.push(format!("doc = {}", toml_str(&self.doc_text())));
            }
            entries.push(Entry {
                parts,
                len_pending,
                int_reg: None,
            });
        }
        // Lengths from integer register arguments of the call, wherever they are.
        // An argument that shares a const's name cannot be a length (`len` would name both).
        let ints: Vec<String> = entries
            .iter()
            .filter_map(|e| e.int_reg.clone())
            .filter(|a| !self.consts.iter().any(|(c, _)| c == a))
            .collect();
        let mut out = Vec::new();
        for mut e in entries {
            if let Some(most) = e.len_pending {
                if ints.is_empty() {
                    let n = self.rng.range(1, most.min(64));
                    let n = self.int(n);
                    e.parts.push(format!("len = {n}"));
                } else {
                    let a = self.rng.pick(&ints).clone();
                    e.parts.push(format!("len = {}", toml_str(&a)));
                    let m = self.buffer_max(most);
                    e.parts.push(format!("max = {m}"));
                }
            }
            if e.parts.len() == 1 {
                out.push(e.parts.remove(0));
            } else {
                self.rng.shuffle(&mut e.parts[1..]);
                out.push(format!("{{ {} }}", e.parts.join(", ")));
            }
        }
        out
    }

    /// `max` of a buffer of at most `most` elements.
    fn buffer_max(&mut self, most: u64) -> String {
        let m = self.value(most).max(1);
        self.number(m)
    }

    /// `"arg.field"` of the fields of earlier struct arguments the guest passes and `ok`
    /// accepts.
    fn fields_of(
        &self,
        structs: &[(String, usize)],
        ok: impl Fn(&FieldInfo) -> bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (a, si) in structs {
            for f in &self.structs[*si].fields {
                if f.reads && ok(f) {
                    out.push(format!("{a}.{}", f.name));
                }
            }
        }
        out
    }

    /// A buffer's element type: an integer, an alias or enum, or a struct (any: a buffer
    /// has its own direction), never an array.
    fn element(&mut self) -> Option<FType> {
        if !self.structs.is_empty() && self.rng.chance(1, 3) {
            let s = &self.structs[self.rng.below(self.structs.len() as u64) as usize];
            return Some(FType::of_struct(s));
        }
        // No arrays (depth 2 allows none).
        self.ftype(MAX_STRUCT, 2)
    }
}

impl Gen<'_> {
    /// A call's `results`, or `None` when no register comes back at one place in every
    /// transport: place 0 is the result register (every transport has one, the same),
    /// place `k` argument register `k - 1` of the first `ARG_REGS` (the same in every
    /// transport). At most one result is the error code, an enum with an `ok` that is
    /// none of its values; a call of two or more values gets `types::<Call>Results`, so
    /// a `[types]` entry of that name rules them out.
    pub(crate) fn results(&mut self, arg_regs: usize, call: &str) -> Option<Vec<String>> {
        let mut places: Vec<&'static str> = Vec::new();
        let first = self.tregs.first()?.clone();
        if let Some(r) = first.0
            && self.tregs.iter().all(|(ret, _)| *ret == Some(r))
        {
            places.push(r);
        }
        for k in 0..arg_regs {
            let r = first.1[k];
            if self.tregs.iter().all(|(_, a)| a.get(k) == Some(&r)) {
                places.push(r);
            }
        }
        if places.is_empty() {
            return None;
        }
        self.rng.shuffle(&mut places);
        let n = self.rng.range(1, places.len().min(3) as u64) as usize;
        let results_struct = format!("{}Results", camel(call));
        let clash = self
            .type_defs
            .iter()
            .any(|(t, _, _)| camel(t) == results_struct);
        let mut names = HashSet::new();
        let mut error_done = false;
        let mut values = 0;
        let mut out = Vec::new();
        for reg in places.into_iter().take(n) {
            let name = self.fresh(&mut names, |s| s.to_string());
            let mut parts = vec![
                format!("name = {}", toml_str(&name)),
                format!("reg = \"{reg}\""),
            ];
            // An error code: an enum with a success value none of its variants has.
            let err = (!error_done && !self.enums.is_empty() && self.rng.chance(1, 2))
                .then(|| self.rng.pick(&self.enums).clone())
                .and_then(|(e, max, vals)| {
                    let ok = [0, 1, max, self.rng.range(0, max)]
                        .into_iter()
                        .find(|v| !vals.contains(v))?;
                    Some((e, ok))
                });
            if let Some((e, ok)) = err {
                error_done = true;
                parts.push(format!("type = {}", toml_str(&e)));
                parts.push("error = true".into());
                if ok != 0 || self.rng.chance(1, 3) {
                    let ok = self.number(ok);
                    parts.push(format!("ok = {ok}"));
                }
            } else {
                if clash && values == 1 {
                    continue;
                }
                values += 1;
                let ty = if !self.type_defs.is_empty() && self.rng.chance(1, 2) {
                    self.rng.pick(&self.type_defs).0.clone()
                } else {
                    (*self.rng.pick(&["u8", "u16", "u32", "u64", "bool"])).to_string()
                };
                parts.push(format!("type = {}", toml_str(&ty)));
            }
            if self.rng.chance(1, 3) {
                parts.push(format!("doc = {}", toml_str(&self.doc_text())));
            }
            self.rng.shuffle(&mut parts[1..]);
            out.push(format!("{{ {} }}", parts.join(", ")));
        }
        (!out.is_empty()).then_some(out)
    }
}
