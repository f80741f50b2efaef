"""Writes scripts/tarsnode.order, the function layout scripts/build-tarsnode links tarsnode with
(why: scripts/callgrind_order.py).

tarsnode runs a few hundred functions of its own, the Swift runtime and standard library, and
glibc; left where the linker puts them they touch most of the binary. This script runs tarsnode
under callgrind in plain init mode and in server mode (supervising HelloServer from a description
file: start-up, heartbeats, state reports, a stop) and lists every function it ran, plain mode's
first.

  python3 scripts/tarsnode-order.py   (after scripts/build-tarsnode and
                                       swift build -c release --product HelloServer; needs valgrind)
"""
import os, shutil, signal, subprocess, sys, tempfile, time

from callgrind_order import callgrind, write_order

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.path.join(root, ".build-static", "release", "tarsnode")
hello = os.path.join(root, ".build", "release", "HelloServer")
work = tempfile.mkdtemp(prefix="tarsnode-order-")
# Callgrind reads the symbol table; it gives up on the DWARF of a Swift static binary.
node = os.path.join(work, "tarsnode")
subprocess.run(["objcopy", "--strip-debug", binary, node], check=True)


# Plain init mode, lean and through the full supervisor.
callgrind(node, os.path.join(work, "plain.1"), ["--", "true"])
callgrind(node, os.path.join(work, "plain.2"), ["--restart", "--grace", "1", "--", "sleep", "0.3"],
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


callgrind(node, os.path.join(work, "server"), server, run_server)

parts = ["plain.1", "plain.2"] + sorted(f for f in os.listdir(work) if f.startswith("server"))
out = os.path.join(root, "scripts", "tarsnode.order")
count = write_order(node, [os.path.join(work, part) for part in parts], out)
print("%s: %d functions" % (out, count), file=sys.stderr)
shutil.rmtree(work)
