"""PID 1 supervisors side by side, one run: tarsnode (plain init mode, static build) against
tini, dumb-init, catatonit and supervisord from Debian, each supervising a child that does
nothing, and tarsnode in server mode (the business-pod supervisor) supervising HelloServer.
Prints a table; docs/BENCHMARKS.md records it. Needs root (PID namespaces).

  memory     VmHWM, RssAnon and threads of the supervisor as PID 1 of its own namespace, 1 s
             after start: "cold" right after dropping the page cache (the first start on a
             node), then "warm" (the next start, read after the 30 s of idling); how the kernel
             caches the binary (folio sizes) changes how much of it each page fault maps, so
             both are shown
  server     tarsnode-server is `tarsnode` with a pod's identity and flags, supervising the Swift
             HelloServer (release build) from a description file (--descriptor: no registry, so
             its state reports go unanswered and retry with backoff), ServerObj and NodeObj
             listening, output captured into the log file and copied to stdout as in a pod. Its
             cold figure is read 12 s after start, past the server's first periodic heartbeat.
             The timing columns need the probe child, so they are left empty for this row
  wakeups    context switches of the idle supervisor over 30 s, per minute
  exec→child time from exec of the supervisor to its child running (median of 30)
  forwarding time from SIGTERM to the supervisor to the child's handler (median of 30)
  unshare    wall time of `unshare --pid --fork --mount-proc SUPERVISOR true` (median of 20)
"""
import os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
work = tempfile.mkdtemp(prefix="pid1-bench-")
probe = os.path.join(work, "probe")
subprocess.run(["cc", "-O2", "-o", probe, os.path.join(here, "probe.c")], check=True)
tarsnode = os.path.join(root, ".build-static", "tarsnode")
hello = os.path.join(root, ".build", "release", "HelloServer")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def server_mode(command):
    """tarsnode as a business pod's PID 1, supervising HelloServer (`command` is not used)."""
    pod = tempfile.mkdtemp(prefix="pod-", dir=work)
    os.makedirs(os.path.join(pod, "image"))
    shutil.copy(hello, os.path.join(pod, "image", "HelloServer"))
    with open(os.path.join(pod, "descriptor.json"), "w") as f:
        f.write('{"profile": "", "asyncThreadNum": 1, "adapters": {"Test.HelloServer.HelloObjAdapter": '
                '{"endpoint": "tcp -h ${localip} -p %d -t 60000", "servant": "Test.HelloServer.HelloObj"}}}'
                % free_port())
    return [tarsnode, "--app", "Test", "--server", "HelloServer", "--pod-name", "test-helloserver-0",
            "--base-dir", os.path.join(pod, "base"), "--log-dir", os.path.join(pod, "logs"),
            "--image-bin-dir", os.path.join(pod, "image"), "--server-obj-port", str(free_port()),
            "--node-obj-port", str(free_port()), "--admin-port", str(free_port()),
            "--descriptor", os.path.join(pod, "descriptor.json"),
            "--registry", "tars.tarsregistry.RegistryObj@tcp -h 127.0.0.1 -p %d" % free_port(),
            "--locator", "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p %d" % free_port()]

def supervisord(command):
    conf = os.path.join(work, "supervisord-%d.conf" % abs(hash(tuple(command))))
    with open(conf, "w") as f:
        f.write("[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile=%s/sd.pid\n"
                "[program:child]\ncommand=%s\nstartsecs=0\nautorestart=false\nstdout_logfile=/dev/null\n"
                "stderr_logfile=/dev/null\n" % (work, " ".join(command)))
    return ["supervisord", "-n", "-c", conf]

supervisors = {
    "tarsnode": lambda c: [tarsnode, "--"] + c,
    "tini": lambda c: ["tini", "--"] + c,
    "dumb-init": lambda c: ["dumb-init"] + c,
    "catatonit": lambda c: ["catatonit", "--"] + c,
    "supervisord": supervisord,
    "tarsnode-server": server_mode,
}
# Server mode supervises a real server, not the probe: memory and wakeups only.
memory_only = {"tarsnode-server"}

def read(path):
    for _ in range(1000):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise RuntimeError("no stamp in " + path)

def status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.split(":", 1) for l in f if ":" in l)

def child_of(pid):
    for _ in range(200):
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise RuntimeError("no child")

def drop_caches():
    subprocess.run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")

def memory_and_wakeups(name, idle=30, settle=1):
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc"] + supervisors[name]([probe, "start", os.path.join(work, "m")]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sup = child_of(p.pid)
    time.sleep(settle)
    s = status(sup)
    before = int(s["voluntary_ctxt_switches"]) + int(s["nonvoluntary_ctxt_switches"])
    time.sleep(idle)
    s2 = status(sup)
    after = int(s2["voluntary_ctxt_switches"]) + int(s2["nonvoluntary_ctxt_switches"])
    os.kill(sup, signal.SIGKILL)
    p.wait()
    kb = lambda v: int(v.split()[0])
    return kb(s2["VmHWM"]), kb(s2["RssAnon"]), int(s2["Threads"]), (after - before) * 60 // idle if idle else 0

def exec_to_child(name, runs=30):
    out = []
    for i in range(runs):
        t0, t1 = os.path.join(work, "t0"), os.path.join(work, "t1")
        for f in (t0, t1):
            if os.path.exists(f):
                os.unlink(f)
        p = subprocess.Popen([probe, "launch", t0] + supervisors[name]([probe, "start", t1]), stderr=subprocess.DEVNULL)
        out.append((read(t1) - read(t0)) / 1e6)
        for pid in [p.pid]:
            try:
                os.kill(child_of(pid), signal.SIGKILL)
            except Exception:
                pass
            os.kill(pid, signal.SIGKILL)
        p.wait()
    return statistics.median(out)

def forwarding(name, runs=30):
    out = []
    for i in range(runs):
        got, ready = os.path.join(work, "got"), os.path.join(work, "ready")
        for f in (got, ready):
            if os.path.exists(f):
                os.unlink(f)
        p = subprocess.Popen(supervisors[name]([probe, "term", got, ready]), stderr=subprocess.DEVNULL)
        read(ready)
        time.sleep(0.05)
        sent = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        os.kill(p.pid, signal.SIGTERM)
        out.append((read(got) - sent) / 1e6)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return statistics.median(out)

def unshare_true(name, runs=20):
    command = ["true"] if name != "supervisord" else ["sh", "-c", "'kill -TERM $PPID'"]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(["unshare", "--pid", "--fork", "--mount-proc"] + supervisors[name](command),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)

names = sys.argv[1:] or list(supervisors)
rows = []
for n in names:
    drop_caches()
    settle = 12 if n in memory_only else 1
    cold, _, _, _ = memory_and_wakeups(n, idle=0, settle=settle)
    hwm, anon, threads, wakeups = memory_and_wakeups(n, settle=settle)
    timing = (None, None, None) if n in memory_only else (exec_to_child(n), forwarding(n), unshare_true(n))
    rows.append((n, cold, hwm, anon, threads, wakeups) + timing)
    print("measured", n, file=sys.stderr)

print("%-15s %10s %10s %11s %7s %12s %14s %14s %11s" % ("supervisor", "VmHWM cold", "VmHWM warm", "RssAnon", "threads",
      "wakeups/min", "exec→child ms", "forwarding ms", "unshare ms"))
for r in rows:
    timing = "%14s %14s %11s" % ("-", "-", "-") if r[6] is None else "%14.2f %14.3f %11.1f" % r[6:]
    print("%-15s %7d KiB %7d KiB %7d KiB %7d %12d %s" % (r[:6] + (timing,)))
base = {r[0]: r for r in rows}
if "tarsnode" in base and "tini" in base:
    t, i = base["tarsnode"], base["tini"]
    print("tarsnode/tini: VmHWM cold %.2f, warm %.2f, RssAnon %.2f, exec→child %.2f, forwarding %.2f, unshare %.2f" %
          (t[1] / i[1], t[2] / i[2], t[3] / i[3], t[6] / i[6], t[7] / i[7], t[8] / i[8]))
if "tarsnode-server" in base and "tini" in base:
    t, i = base["tarsnode-server"], base["tini"]
    print("tarsnode-server/tini: VmHWM cold %.2f, warm %.2f, RssAnon %.2f" % (t[1] / i[1], t[2] / i[2], t[3] / i[3]))
