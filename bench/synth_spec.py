#!/usr/bin/env python3
"""Writes a synthetic pvabi spec with N hypercalls, for timing the generator at scale.

    bench/synth_spec.py N > spec.toml

The calls cycle through eight shapes that cover what spec/lguest.toml uses: no
arguments, an aligned address, a range bounded by a const, an enum, four plain
arguments, a bool, a u32 and a mix; every fourth call is lazy (at most 3 arguments, the
ring's slot). The header (two transports, consts, types, the ring and the shared page) is
fixed, so the spec grows only with N. Deterministic: the same N gives the same file.
`pvgen check` accepts every N from 1 to 100000.
"""

import sys

HEADER = '''# Synthetic spec with {n} hypercalls, written by bench/synth_spec.py. Do not edit.

[abi]
name = "synth"
version = 1
doc = "A synthetic ABI for benchmarking the generator."

[abi.transport.vmcall]
doc = "vmcall, as lguest."
instruction = "vmcall"
nr = "rax"
args = ["rbx", "rcx", "rdx", "rsi"]
ret = "rax"

[abi.transport.pio]
doc = "A port write."
instruction = "out"
port = 0xf4
nr = "rax"
args = ["rdi", "rsi", "rdx", "rcx"]
ret = "rax"

[consts]
page_size = {{ value = 4096, doc = "Size of a page." }}
table_entries = {{ value = 512, doc = "Entries in a table." }}

[types.gpa]
doc = "A guest-physical address."
alias = "u64"

[types.mode]
doc = "A mode."
repr = "u64"
variants = [
  {{ name = "off", value = 0, doc = "Off." }},
  {{ name = "on", value = 1, doc = "On." }},
  {{ name = "auto", value = 4, doc = "Automatic." }},
]

[ring]
doc = "Calls queued in lazy mode."
size = 64
args = 3
ready = 0
done = 0xff

[shared]
name = "synth_data"
doc = "The shared page."

[[shared.field]]
name = "irq_enabled"
type = "u32"
writer = "both"
doc = "Interrupt flag."

[[shared.field]]
name = "hcall_status"
type = "ring.status"
writer = "both"
doc = "Ring status bytes."

[[shared.field]]
name = "hcalls"
type = "ring.slots"
writer = "guest"
doc = "Ring slots."
'''

SHAPES = [
    [],
    ['{ name = "addr", type = "gpa", doc = "An address.", align = 4096 }'],
    [
        '{ name = "table", type = "gpa", doc = "A table.", align = 4096 }',
        '{ name = "index", type = "u64", doc = "An index.", range = [0, "table_entries - 1"] }',
    ],
    ['{ name = "mode", type = "mode", doc = "The mode." }'],
    [
        '{ name = "a", type = "u64" }',
        '{ name = "b", type = "u64" }',
        '{ name = "c", type = "u64" }',
        '{ name = "d", type = "u64" }',
    ],
    ['{ name = "enable", type = "bool", doc = "On or off." }'],
    ['{ name = "value", type = "u32", doc = "A 32-bit value." }'],
    [
        '{ name = "addr", type = "gpa", align = 8 }',
        '{ name = "count", type = "u16", range = [1, 64] }',
        '{ name = "mode", type = "mode" }',
    ],
]


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit("usage: synth_spec.py N  (N >= 1)")
    n = int(sys.argv[1])
    out = [HEADER.format(n=n)]
    for i in range(n):
        args = SHAPES[i % len(SHAPES)]
        lazy = i % 4 == 3 and len(args) <= 3
        out.append("[[hypercall]]")
        out.append(f'name = "call_{i}"')
        out.append(f"nr = {i}")
        out.append(f'doc = "Synthetic hypercall {i}, shape {i % len(SHAPES)}."')
        if lazy:
            out.append("lazy = true")
        if i % 5 == 0:
            out.append('ret = "a value."')
        if args:
            out.append("args = [")
            out.extend(f"  {a}," for a in args)
            out.append("]")
        out.append("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
