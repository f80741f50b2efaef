"""Writes scripts/tarsnode.order, the function layout scripts/build-tarsnode links tarsnode with.

The kernel maps an executable's pages 64 KiB at a time around each page fault, so what a process
keeps resident of a static binary depends less on how much code it runs than on how many 64 KiB
windows that code is spread over. tarsnode runs a few hundred functions of its own, the Swift
runtime and standard library, and glibc; left where the linker puts them they touch most of the
binary. This script runs tarsnode under callgrind in plain init mode and in server mode
(supervising HelloServer from a description file: start-up, heartbeats, state reports, a stop) and lists every function it ran, plain mode's first, as the `.text.NAME` sections
gold's --section-ordering-file places side by side. Functions missing from the list are still
linked, just elsewhere; a stale list costs memory, never correctness.

  python3 scripts/tarsnode-order.py   (after scripts/build-tarsnode and
                                       swift build -c release --product HelloServer; needs valgrind)
"""
import os, re, shutil, signal, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, ".build-static", "release", "tarsnode")
hello = os.path.join(root, ".build", "release", "HelloServer")
work = tempfile.mkdtemp(prefix="tarsnode-order-")
# Callgrind reads the symbol table; it gives up on the DWARF of a Swift static binary.
node = os.path.join(work, "tarsnode")
subprocess.run(["objcopy", "--strip-debug", binary, node], check=True)


def callgrind(out, args, body=None):
    command = ["valgrind", "--tool=callgrind", "--demangle=no", "--callgrind-out-file=" + out, node] + args
    p = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if body:
        body(p)
    p.wait()


def names(path):
    found = []
    for line in open(path):
        m = re.match(r"^c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
        if m:
            name = m.group(1).split("'")[0]
            if not name.startswith("0x"):
                found.append(name)
    return found


# Plain init mode, lean and through the full supervisor.
callgrind(os.path.join(work, "plain.1"), ["--", "true"])
callgrind(os.path.join(work, "plain.2"), ["--restart", "--grace", "1", "--", "sleep", "0.3"],
          lambda p: (time.sleep(3), p.send_signal(signal.SIGTERM)))

# Server mode: HelloServer from a description, no registry.
os.makedirs(os.path.join(work, "image"))
shutil.copy(hello, os.path.join(work, "image", "HelloServer"))
with open(os.path.join(work, "descriptor.json"), "w") as f:
    f.write('{"profile": "", "asyncThreadNum": 1, "adapters": {"Test.HelloServer.HelloObjAdapter": '
            '{"endpoint": "tcp -h ${localip} -p 28101 -t 60000", "servant": "Test.HelloServer.HelloObj"}}}')
server = ["--app", "Test", "--server", "HelloServer", "--pod-name", "test-helloserver-0",
          "--base-dir", os.path.join(work, "base"), "--log-dir", os.path.join(work, "logs"),
          "--image-bin-dir", os.path.join(work, "image"), "--server-obj-port", "28102",
          "--node-obj-port", "28103", "--admin-port", "28104", "--descriptor", os.path.join(work, "descriptor.json"),
          "--registry", "tars.tarsregistry.RegistryObj@tcp -h 127.0.0.1 -p 1",
          "--locator", "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 1"]


def run_server(p):
    time.sleep(14)  # start-up, the first heartbeats (every 10 s), report retries
    subprocess.run(["callgrind_control", "--dump", str(p.pid)], stdout=subprocess.DEVNULL)
    time.sleep(1)
    p.send_signal(signal.SIGTERM)


callgrind(os.path.join(work, "server"), server, run_server)

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
parts = ["plain.1", "plain.2"] + sorted(f for f in os.listdir(work) if f.startswith("server"))
for part in parts:
    for name in names(os.path.join(work, part)):
        m = variant.match(name)
        for alias in [name] + aliases.get(address.get(name), []) + (families.get(m.group(1), []) if m else []):
            if alias not in seen:
                seen.add(alias)
                order.append(alias)
out = os.path.join(root, "scripts", "tarsnode.order")
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print("%s: %d functions" % (out, len(order)), file=sys.stderr)
shutil.rmtree(work)
