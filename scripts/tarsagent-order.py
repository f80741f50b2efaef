"""Writes scripts/tarsagent.order, the function layout scripts/build-agent links the static
tarsagent with (why: scripts/callgrind_order.py).

Runs the static tarsagent under callgrind as the DaemonSet runs it: a retention pass over a log
directory, its volume and pod jobs listing and watching an API server over TLS (the embedded store
behind KubeFront, `tars-bench kube-api`, behind socat's TLS with an RSA 2048 certificate), and
/metrics scraped; then `tarsagent ports`, whose scan AgentObj answers with. OpenSSL's objects
carry no per-function sections, so the linker moves each of them whole.

  python3 scripts/tarsagent-order.py   (after scripts/build-agent and swift build --product
                                        tars-bench; needs valgrind, socat and openssl)
"""
import os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

from callgrind_order import callgrind, write_order

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "Benchmarks", "agent"))
from api_tls import free_port, start as api_over_tls  # noqa: E402
from logdir import make_logs  # noqa: E402

binary = os.path.join(root, ".build-agent", "swift", "release", "tarsagent")
bench = next(p for p in (os.path.join(root, ".build", c, "tars-bench") for c in ("release", "debug")) if os.path.exists(p))
work = tempfile.mkdtemp(prefix="tarsagent-order-")
# Callgrind reads the symbol table; it gives up on the DWARF of a Swift static binary.
agent = os.path.join(work, "tarsagent")
subprocess.run(["objcopy", "--strip-debug", binary, agent], check=True)

logs = os.path.join(work, "app_log")
make_logs(logs, 4, 10)
processes, url, ca, token = api_over_tls(work, bench, "order-node", 20)
try:
    metrics = free_port()

    def daemon(p):
        time.sleep(40)  # valgrind is slow: start-up, the pass, the TLS handshakes, the first lists
        urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=30).read()
        time.sleep(2)
        subprocess.run(["callgrind_control", "--dump", str(p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        p.send_signal(signal.SIGKILL)

    callgrind(agent, os.path.join(work, "run"),
              ["run", "--log-dir", logs, "--every", "3600", "--listen", "127.0.0.1", "--port", "0",
               "--metrics-port", str(metrics), "--kube-server", url, "--kube-ca-file", ca, "--kube-token-file", token,
               "--node", "order-node", "--volume-root", os.path.join(work, "volumes")], daemon)
    callgrind(agent, os.path.join(work, "ports"), ["ports"])
finally:
    for p in processes:
        p.kill()
parts = sorted(f for f in os.listdir(work) if f.startswith("run")) + ["ports"]
out = os.path.join(root, "scripts", "tarsagent.order")
count = write_order(agent, [os.path.join(work, part) for part in parts], out)
print("%s: %d functions" % (out, count), file=sys.stderr)
shutil.rmtree(work)
