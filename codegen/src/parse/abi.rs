//! Room: the `[abi]` table and its `[abi.transport.NAME]` tables (instruction, port,
//! registers), with the rules one transport must keep on its own.

use std::ops::Range;

use super::Parser;
use super::toml::{Obj, Val, as_obj, check_name};
use crate::diag::Diagnostic;
use crate::spec::*;

/// A transport's registers as read, with the spans its rules point at.
struct Regs {
    nr: Option<Reg>,
    /// `nr = "port"` or `nr = "address"`: the call number is where the value goes.
    nr_place: Option<Nr>,
    ret: Option<Reg>,
    args: Vec<Reg>,
    arg_spans: Vec<Range<usize>>,
    ok: bool,
}

impl Parser<'_> {
    /// `[abi]`: name, version, doc and the transports. The ABI comes back whenever the
    /// table is there (with a stand-in for a bad name or version, already reported), so the
    /// rest of the spec is still checked.
    pub(super) fn abi(&mut self, o: &Obj<'_, '_>) -> (Option<Abi>, Vec<Transport>) {
        o.check_keys(self.d, &["name", "version", "doc", "transport"]);
        let name = o.req_str(self.d, "name", "\"my_abi\"");
        let version = o.req_int(self.d, "version", "1");
        let doc = o.opt_text(self.d, "doc");
        let version = version.and_then(|v| match u32::try_from(v.v) {
            Ok(n) => Some(n),
            Err(_) => {
                self.d.push(
                    Diagnostic::new(
                        v.span,
                        "`version` in [abi] must fit in a u32 (0 to 4294967295)",
                    )
                    .help("ABI versions count up from 1"),
                );
                None
            }
        });
        let transports = self.transports(o);
        let name = match name {
            Some(n) if check_name(self.d, &n, "ABI") => n,
            Some(n) => Sp::new("abi".to_string(), n.span),
            None => Sp::new("abi".to_string(), o.span.clone()),
        };
        let abi = Abi {
            name,
            version: version.unwrap_or(1),
            doc,
        };
        (Some(abi), transports)
    }

    /// Every `[abi.transport.NAME]`, in source order.
    fn transports(&mut self, o: &Obj<'_, '_>) -> Vec<Transport> {
        let mut transports = Vec::new();
        let Some(v) = o.get("transport") else {
            self.d.push(
                Diagnostic::new(o.span.clone(), "[abi] has no transport")
                    .help("add an `[abi.transport.vmcall]` table (instruction, nr, args, ret)"),
            );
            return transports;
        };
        let Some(t) = as_obj(self.d, v, "[abi.transport]".into(), "transport") else {
            return transports;
        };
        if t.t.is_empty() {
            self.d.push(
                Diagnostic::new(t.span.clone(), "[abi.transport] has no transport")
                    .help("add an `[abi.transport.vmcall]` table"),
            );
        }
        for (k, v) in t.t.iter() {
            let tname = Sp::new(k.get_ref().to_string(), k.span());
            let what = format!("transport `{}`", tname.v);
            if let Some(obj) = as_obj(self.d, v, what, &tname.v)
                && let Some(tr) = self.transport(tname, &obj)
            {
                transports.push(tr);
            }
        }
        transports
    }

    fn reg(&mut self, o: &Obj<'_, '_>, key: &str, v: &Val<'_>) -> Option<Reg> {
        let s = o.str_at(self.d, key, v)?;
        match Reg::from_name(&s.v) {
            Some(r) => Some(r),
            None => {
                let names: Vec<&str> = Reg::ALL.iter().map(|r| r.name()).collect();
                self.d.push(
                    Diagnostic::new(s.span, format!("unknown register `{}` in {}", s.v, o.what))
                        .help(format!("registers are {}", names.join(", "))),
                );
                None
            }
        }
    }

    /// One `[abi.transport.NAME]`.
    fn transport(&mut self, name: Sp<String>, o: &Obj<'_, '_>) -> Option<Transport> {
        o.check_keys(self.d, &["instruction", "port", "nr", "args", "ret", "doc"]);
        let name_ok = check_name(self.d, &name, "transport");
        let doc = o.opt_text(self.d, "doc");
        let (instruction, port, port_ok) = self.instruction_and_port(o);
        let regs = self.registers(o);
        let out_ok = instruction != Some(Instruction::Out)
            || regs.nr_place.is_some()
            || self.out_rules(o, port, &regs);
        let place_ok = self.nr_place_rules(o, instruction, &regs);
        if !(name_ok && port_ok && regs.ok && out_ok && place_ok) {
            return None;
        }
        let nr = match regs.nr_place {
            Some(p) => p,
            None => Nr::Reg(regs.nr?),
        };
        Some(Transport {
            name,
            doc,
            instruction: instruction?,
            port,
            nr,
            args: regs.args,
            ret: regs.ret,
        })
    }

    /// `instruction` and `port`: `out` needs a port, the others may not have one.
    fn instruction_and_port(
        &mut self,
        o: &Obj<'_, '_>,
    ) -> (Option<Instruction>, Option<u16>, bool) {
        let instruction = o
            .req_str(self.d, "instruction", "\"vmcall\"")
            .and_then(|s| match s.v.as_str() {
                "vmcall" => Some(Instruction::Vmcall),
                "vmmcall" => Some(Instruction::Vmmcall),
                "out" => Some(Instruction::Out),
                "mmio" => Some(Instruction::Mmio),
                other => {
                    self.d.push(
                        Diagnostic::new(
                            s.span,
                            format!("unknown instruction `{other}` in {}", o.what),
                        )
                        .help("use one of: vmcall, vmmcall, out, mmio"),
                    );
                    None
                }
            });
        let port = o
            .opt_int(self.d, "port")
            .and_then(|p| match u16::try_from(p.v) {
                Ok(p) => Some(p),
                Err(_) => {
                    self.d.push(
                        Diagnostic::new(
                            p.span,
                            format!("`port` in {} must be below 0x10000", o.what),
                        )
                        .help("I/O ports are 16-bit: use 0 to 0xffff"),
                    );
                    None
                }
            });
        let mut ok = true;
        let nr_is_port = o
            .get("nr")
            .is_some_and(|v| matches!(v.get_ref(), ::toml::de::DeValue::String(s) if s == "port"));
        if instruction == Some(Instruction::Out) && o.get("port").is_none() && !nr_is_port {
            self.d.push(
                Diagnostic::new(
                    o.span.clone(),
                    format!("{} uses `out` but has no `port`", o.what),
                )
                .help("add `port = 0xf4` (any port the host traps)"),
            );
            ok = false;
        }
        if instruction.is_some_and(|i| i != Instruction::Out) && o.get("port").is_some() {
            self.d.push(
                Diagnostic::new(
                    o.key_span("port"),
                    format!("`port` in {} only applies to the `out` instruction", o.what),
                )
                .help("remove `port`"),
            );
            ok = false;
        }
        (instruction, port, ok)
    }

    /// `nr`, `args` and `ret`. A register does one job: the call number, one argument, or
    /// the result (which may share the call number's register, as rax does in KVM's
    /// convention).
    fn registers(&mut self, o: &Obj<'_, '_>) -> Regs {
        let nr_v = o.required(self.d, "nr", "\"rax\"");
        let nr_place = nr_v.and_then(|v| match v.get_ref() {
            ::toml::de::DeValue::String(s) if s == "port" => Some(Nr::Port),
            ::toml::de::DeValue::String(s) if s == "address" => Some(Nr::Address),
            _ => None,
        });
        let nr = match nr_place {
            Some(_) => None,
            None => nr_v.and_then(|v| self.reg(o, "nr", v)),
        };
        // No `ret`: the transport returns nothing (a store to guest memory has no result).
        let ret = o.get("ret").and_then(|v| self.reg(o, "ret", v));
        let mut regs = Regs {
            nr,
            nr_place,
            ret,
            args: Vec::new(),
            arg_spans: Vec::new(),
            ok: true,
        };
        if o.required(self.d, "args", "[\"rbx\", \"rcx\"]").is_some()
            && let Some(a) = o.opt_array(self.d, "args")
        {
            for v in a.iter() {
                match self.reg(o, "args", v) {
                    Some(r) => {
                        regs.args.push(r);
                        regs.arg_spans.push(v.span());
                    }
                    None => regs.ok = false,
                }
            }
        }
        let mut seen: Vec<(Reg, &str)> = nr
            .map(|r| (r, "the call number `nr`"))
            .into_iter()
            .collect();
        if nr.is_none() && nr_place.is_none() {
            return regs;
        }
        for (r, span) in regs.args.iter().zip(&regs.arg_spans) {
            if let Some((_, role)) = seen.iter().find(|(s, _)| s == r) {
                self.d.push(
                    Diagnostic::new(
                        span.clone(),
                        format!(
                            "register `{}` is used twice in {} (it is already {role})",
                            r.name(),
                            o.what
                        ),
                    )
                    .help("give every argument its own register, distinct from `nr`"),
                );
                regs.ok = false;
            } else {
                seen.push((*r, "another argument"));
            }
        }
        if let Some(ret) = ret
            && regs.args.contains(&ret)
        {
            self.d.push(
                Diagnostic::new(
                    o.get("ret").map_or(o.span.clone(), |v| v.span()),
                    format!(
                        "register `{}` is used twice in {} (an argument and `ret`)",
                        ret.name(),
                        o.what
                    ),
                )
                .help("return the result in `nr`'s register or one no argument uses"),
            );
            regs.ok = false;
        }
        regs
    }

    /// `nr = "port"` goes with `out` (and no fixed `port`), `nr = "address"` with `mmio`;
    /// either carries one value, the call's only argument register.
    fn nr_place_rules(
        &mut self,
        o: &Obj<'_, '_>,
        instruction: Option<Instruction>,
        regs: &Regs,
    ) -> bool {
        let Some(i) = instruction else { return true };
        let span = o.get("nr").map_or(o.span.clone(), |v| v.span());
        let mut ok = true;
        match (regs.nr_place, i) {
            (Some(Nr::Port), Instruction::Out) | (Some(Nr::Address), Instruction::Mmio) => {}
            (None, Instruction::Mmio) => {
                self.d.push(
                    Diagnostic::new(
                        span,
                        format!(
                            "{} stores to memory, so its call number is the address stored to",
                            o.what
                        ),
                    )
                    .help("set `nr = \"address\"`: each call stores to its own address"),
                );
                ok = false;
            }
            (Some(p), _) => {
                self.d.push(
                    Diagnostic::new(
                        span,
                        format!("`nr = \"{}\"` in {} does not go with `{}`", p.name(), o.what, i.name()),
                    )
                    .help("`nr = \"port\"` is for `out` (a port per call), `nr = \"address\"` for `mmio` (an address per call); otherwise name a register"),
                );
                ok = false;
            }
            (None, _) => {}
        }
        if regs.nr_place.is_some() {
            if regs.args.len() > 1 {
                self.d.push(
                    Diagnostic::new(regs.arg_spans[1].clone(), format!("{} writes one value: it has one argument register", o.what))
                        .help("keep one register in `args`: the value written (pass more through a struct in guest memory)"),
                );
                ok = false;
            }
            if regs.nr_place == Some(Nr::Port) {
                if o.get("port").is_some() {
                    self.d.push(
                        Diagnostic::new(
                            o.key_span("port"),
                            format!(
                                "{} has a port per call (`nr = \"port\"`) and a fixed `port`",
                                o.what
                            ),
                        )
                        .help("remove `port`: the call number is the port"),
                    );
                    ok = false;
                }
                if regs.args.first().is_some_and(|r| *r != Reg::Rax) {
                    self.d.push(
                        Diagnostic::new(
                            regs.arg_spans[0].clone(),
                            format!("{}: `out` sends eax, so the value must be in `rax`", o.what),
                        )
                        .help("set `args = [\"rax\"]`"),
                    );
                    ok = false;
                }
                if regs.ret.is_some_and(|r| r == Reg::Rdx) {
                    self.d.push(
                        Diagnostic::new(
                            o.key_span("ret"),
                            format!(
                                "{}: the port travels in dx, so rdx cannot carry the result",
                                o.what
                            ),
                        )
                        .help("return in rax, or no result"),
                    );
                    ok = false;
                }
            }
            if regs.nr_place == Some(Nr::Address) && regs.ret.is_some() {
                self.d.push(
                    Diagnostic::new(
                        o.key_span("ret"),
                        format!("{} is a store: nothing comes back in a register", o.what),
                    )
                    .help("remove `ret`: results travel in guest memory (`out` fields)"),
                );
                ok = false;
            }
        }
        ok
    }

    /// `out` sends eax, and with a port above 0xff the port travels in dx.
    fn out_rules(&mut self, o: &Obj<'_, '_>, port: Option<u16>, regs: &Regs) -> bool {
        let mut ok = true;
        if let Some(nr) = regs.nr
            && nr != Reg::Rax
        {
            self.d.push(
                Diagnostic::new(
                    o.get("nr").map_or(o.span.clone(), |v| v.span()),
                    format!(
                        "{}: `out` sends the call number in eax, so `nr` must be `rax`",
                        o.what
                    ),
                )
                .help("set `nr = \"rax\"`"),
            );
            ok = false;
        }
        if port.is_some_and(|p| p > 0xff)
            && let Some(i) = regs.args.iter().position(|r| *r == Reg::Rdx)
        {
            self.d.push(
                Diagnostic::new(
                    regs.arg_spans[i].clone(),
                    format!(
                        "{}: a port above 0xff travels in dx, so rdx cannot carry an argument",
                        o.what
                    ),
                )
                .help("use a port up to 0xff, or another register"),
            );
            ok = false;
        }
        ok
    }
}
