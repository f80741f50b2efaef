"""A static binary's function layout from callgrind runs, for lld's --symbol-ordering-file:
scripts/tarsnode-order.py and scripts/tarsagent-order.py use it.

The kernel maps an executable's pages 64 KiB at a time around each page fault, so what a process
keeps resident of a static binary depends less on how much code it runs than on how many 64 KiB
windows that code is spread over. Listing every function a run executed, in the order first
seen, lets the linker place them side by side. Functions missing from the list are still linked,
just elsewhere; a stale list costs memory, never correctness.
"""
import re, subprocess


def callgrind(node, out, args, body=None, env=None):
    """Runs `node args` under callgrind, writing `out`; `body(process)` drives it if given."""
    command = ["valgrind", "--tool=callgrind", "--demangle=no", "--callgrind-out-file=" + out, node] + args
    p = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    if body:
        body(p)
    p.wait()


def names(path):
    """The functions a callgrind output file (and its dumps) saw run, in order."""
    found = []
    for line in open(path):
        m = re.match(r"^c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
        if m:
            name = m.group(1).split("'")[0]
            if not name.startswith("0x"):
                found.append(name)
    return found


def write_order(node, parts, out):
    """Writes to `out` every function the callgrind files `parts` saw, with their aliases."""
    # Callgrind names one symbol of several at an address (glibc's memcpy/memmove variants, say);
    # the linker orders by any of them, so list them all.
    address, aliases = {}, {}
    for line in subprocess.run(["nm", "--defined-only", node], capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwWiI":
            address[fields[2]] = fields[0]
            aliases.setdefault(fields[0], []).append(fields[2])
    # glibc picks a string function's variant for the CPU (ifunc), and valgrind's CPU is not the
    # real one (no AVX-512): list every variant of the ones that ran.
    variant = re.compile(r"^(__\w+?)_(sse2|sse4_1|sse4_2|ssse3|avx2|avx|evex|avx512\w*)(_|$)")
    families = {}
    for name in address:
        m = variant.match(name)
        if m:
            families.setdefault(m.group(1), []).append(name)
    for base in list(families):
        families[base] = sorted(families[base])
    order, seen = [], set()
    for part in parts:
        for name in names(part):
            m = variant.match(name)
            for alias in [name] + aliases.get(address.get(name), []) + (families.get(m.group(1), []) if m else []):
                if alias not in seen:
                    seen.add(alias)
                    order.append(alias)
    with open(out, "w") as f:
        f.write("\n".join(order) + "\n")
    return len(order)
