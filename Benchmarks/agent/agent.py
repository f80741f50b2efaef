"""tarsagent's cost on a node, beside the tools an operator would otherwise run, in interleaved
rounds (ratios, not absolute times, are the figures), for both builds: the static one the image
ships (scripts/build-agent: libcurl for HTTP/HTTPS over OpenSSL linked in) and the dynamic one
`swift build -c release` makes (Debian's libcurl, Swift's runtime in shared libraries):

- a retention pass (dry run) over 10,000 log files in 100 server directories, half of them
  older than the 5-day limit, beside `find DIR -name '*.log' -mtime +5` (K8SFramework's cron);
- a port query for a process holding 1,000 listening sockets (`tarsagent ports --pid`), beside
  `ss -ltnp` (which also maps sockets to processes);
- the agent as the DaemonSet runs it, idle between passes after its first pass over those
  10,000 files: AgentObj and /metrics on loopback, its volume and pod jobs listing and watching
  an API server over TLS (the embedded store behind KubeFront, `tars-bench kube-api`, with 50
  pods on the node, behind socat's TLS with an RSA 2048 certificate, as kubeadm makes them):
  VmHWM, RssAnon, Pss, its context switches over 10 s (wakeups), and where its resident pages
  are, by mapping (the binary, libcurl and the libraries it brings, the C and C++ runtimes,
  libsystemd, the rest). The 1,000 sockets are still held, so the pod job's host-port check
  reads them. Each agent starts on a fresh set of the 10,000 files. The static build runs
  twice: with its binary's pages dropped from the page cache, and read whole beforehand (as an
  image pull leaves it); the kernel maps more of a file on a fault when more of it is cached.

Peak RSS is GNU time's maximum resident set size.
"""
import os, shutil, subprocess, sys, tempfile, time

from api_tls import free_port, start as api_over_tls
from logdir import make_logs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENTS = {"static": os.path.join(ROOT, ".build-agent/tarsagent"),
          "dynamic": os.path.join(ROOT, ".build/release/tarsagent")}
# The API server's own speed does not enter the agent's figures: any build of tars-bench will do.
BENCH = os.environ.get("TARS_BENCH", os.path.join(ROOT, ".build/release/tars-bench"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def timed(argv):
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *argv], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{argv[0]} failed: {out.stderr[-2000:]}")
    seconds, kib = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib)


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def status_file(path):
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if value:
                fields[key] = value.strip()
    return fields


CURL_CLOSURE = None


def by_mapping(pid):
    """Resident KiB by group of mappings: the agent binary, libcurl and every library it loads
    (ldd), Swift's runtime libraries, the C and C++ runtimes, libsystemd and its own libraries,
    the rest (heap, stacks)."""
    global CURL_CLOSURE
    if CURL_CLOSURE is None:
        out = subprocess.run(["ldd", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"], capture_output=True, text=True).stdout
        CURL_CLOSURE = {line.split("=>")[1].split()[0].split("/")[-1].split(".so")[0]
                        for line in out.splitlines() if "=>" in line} | {"libcurl"}
    runtimes = {"libc", "ld-linux-x86-64", "libm", "libstdc++", "libgcc_s"}
    systemd = {"libsystemd", "libcap", "liblz4", "liblzma", "libzstd", "libgcrypt", "libgpg-error"}
    totals = {"binary": 0, "Swift runtime": 0, "libcurl and its libraries": 0, "C/C++ runtimes": 0,
              "libsystemd's": 0, "other (heap, stacks)": 0}
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
                name = parts[5] if len(parts) > 5 else ""
            elif parts[0] == "Rss:":
                base = name.split("/")[-1].split(".so")[0]
                kib = int(parts[1])
                if name.endswith("/tarsagent"):
                    totals["binary"] += kib
                elif base.startswith("libswift") or base in ("libdispatch", "libBlocksRuntime"):
                    totals["Swift runtime"] += kib
                elif base in runtimes:
                    totals["C/C++ runtimes"] += kib
                elif base in CURL_CLOSURE:
                    totals["libcurl and its libraries"] += kib
                elif base in systemd:
                    totals["libsystemd's"] += kib
                else:
                    totals["other (heap, stacks)"] += kib
    return list(totals.items())


def median(values):
    return sorted(values)[len(values) // 2]


def page_cache(path, warm):
    """Drops the binary's cached pages (cold: as on a node whose page cache let it go), then for
    warm reads it whole, as an image pull leaves it. How much of the file the kernel maps on a
    fault depends on what is cached around the page, so the two give different file pages."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if warm:
            while os.read(fd, 1 << 20):
                pass
    finally:
        os.close(fd)


def idle(agent_path, logs, work, api, warm=True):
    """The agent as the DaemonSet runs it, 3 s after start then over 10 s."""
    _, url, ca, token = api
    page_cache(agent_path, warm)
    log = os.path.join(work, "agent.log")
    with open(log, "w") as out:
        agent = subprocess.Popen(
            [agent_path, "run", "--log-dir", logs, "--every", "3600", "--listen", "127.0.0.1", "--port", "0",
             "--metrics-port", str(free_port()), "--kube-server", url, "--kube-ca-file", ca, "--kube-token-file", token,
             "--node", "bench-node", "--volume-root", os.path.join(work, "volumes")], stdout=out, stderr=out)
    time.sleep(3)
    before = status(agent.pid)
    time.sleep(10)
    after = status(agent.pid)
    rollup = status_file(f"/proc/{agent.pid}/smaps_rollup")
    groups = by_mapping(agent.pid)
    agent.terminate()
    agent.wait()
    with open(log) as f:
        said = f.read()
    if "on node bench-node" not in said or "error" in said.lower():
        sys.exit(f"{agent_path} did not reach the API cleanly:\n{said}")
    switches = sum(int(after[k]) - int(before[k]) for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
    return after, rollup, switches, groups


def main():
    work = tempfile.mkdtemp(prefix="tars-agent-bench.")
    holder = None
    api = None
    try:
        logs = os.path.join(work, "app_log")
        make_logs(logs, 100, 100)
        script = ("import socket, sys, time\nss = []\nfor i in range(1000):\n"
                  "    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1); ss.append(s)\n"
                  "print('ready', flush=True)\ntime.sleep(600)\n")
        holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        holder.stdout.readline()
        rows = {}
        for _ in range(ROUNDS):
            for build, agent in AGENTS.items():
                rows.setdefault(f"retention ({build})", []).append(timed([agent, "retention", "--log-dir", logs, "--dry-run"]))
            rows.setdefault("find -mtime +5", []).append(timed(["find", logs, "-name", "*.log", "-mtime", "+5"]))
            for build, agent in AGENTS.items():
                rows.setdefault(f"ports ({build})", []).append(timed([agent, "ports", "--pid", str(holder.pid)]))
            rows.setdefault("ss -ltnp", []).append(timed(["ss", "-ltnp"]))
        print(f"10,000 log files, a process with 1,000 listening sockets; {ROUNDS} interleaved rounds (median)")
        for name, values in rows.items():
            print(f"  {name:22s} {median([s for s, _ in values]):6.3f} s   peak RSS {max(k for _, k in values) / 1024:6.1f} MiB")
        api = api_over_tls(work, BENCH, "bench-node", 50)
        for build, agent, warm in [("static", AGENTS["static"], False), ("static", AGENTS["static"], True),
                                   ("dynamic", AGENTS["dynamic"], True)]:
            make_logs(logs, 100, 100)  # each agent's first pass deletes the old half
            after, rollup, switches, groups = idle(agent, logs, work, api, warm)
            print(f"  idle agent ({build}, binary {'read whole beforehand' if warm else 'not cached'}), API over TLS: "
                  f"VmHWM {after['VmHWM']}, RssAnon {after['RssAnon']}, Pss {rollup['Pss']}, "
                  f"{switches} context switches in 10 s")
            print("    its resident pages: " + ", ".join(f"{name} {kib / 1024:.1f} MiB" for name, kib in groups if kib))
    finally:
        if holder:
            holder.kill()
        for p in (api[0] if api else []):
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


main()
