#!/usr/bin/env python3
"""One-machine mode figures (docs/BENCHMARKS.md): time from `tars-controlplane up` to every
example endpoint active (fresh state and resumed), idle memory of the control plane, of each
tarsnode (the static one pods ship with) beside tini, and of HelloServer, and the time from a
server's first keepAlive to the registry returning its endpoint (tars-bench keepalive).
Release builds; ports 2788x so a running `up` is not disturbed."""
import os, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build", "release")
TARSNODE = os.path.join(ROOT, ".build-static", "tarsnode")
PORTS = {"query": 27890, "registry": 27891, "config": 27892, "notify": 27893, "admin": 27880}
FIRST_IP = "127.0.150.1"


def status(pid):
    """VmRSS, VmHWM, RssAnon from status; Pss (shared pages split among their users) from smaps_rollup."""
    out = {}
    for name, keys in (("status", ("VmRSS", "VmHWM", "RssAnon")), ("smaps_rollup", ("Pss",))):
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0])
    return out


def up(state):
    log = open(os.path.join(state, "up.log"), "a")
    args = [os.path.join(BIN, "tars-controlplane"), "up", "--manifests", os.path.join(ROOT, "Examples", "one-machine"),
            "--tarsnode", TARSNODE, "--first-pod-ip", FIRST_IP, "--grace", "5"]
    for k, v in PORTS.items():
        args += [f"--{k}-port", str(v)]
    return subprocess.Popen(args, cwd=state, stdout=log, stderr=log)


def active(obj="Test.HelloServer.HelloObj"):
    r = subprocess.run([os.path.join(BIN, "tarsctl"), "query", "--locator", f"tcp -h 127.0.0.1 -p {PORTS['query']}", obj],
                       capture_output=True, text=True)
    m = re.search(r"active endpoints \((\d+)\)", r.stdout)
    return int(m.group(1)) if m and r.returncode == 0 else -1


def until_active(n, t0, timeout=60):
    while time.monotonic() - t0 < timeout:
        if active() == n:
            return time.monotonic() - t0
        time.sleep(0.005)
    raise SystemExit("the example did not become active; see up.log")


def stop(p):
    p.send_signal(2)
    p.wait(timeout=60)


def main():
    for name in ("tars-controlplane", "tarsctl", "HelloServer", "tars-bench"):
        if not os.access(os.path.join(BIN, name), os.X_OK):
            raise SystemExit(f"{name} is missing: Benchmarks/run onemachine builds it")
    cold, resumed = [], []
    state = None
    for i in range(5):
        if state:
            shutil.rmtree(state)
        state = tempfile.mkdtemp(prefix="onemachine-bench-")
        t0 = time.monotonic()
        p = up(state)
        cold.append(until_active(2, t0))
        if i < 4:
            stop(p)
    # Resumed starts use the state of the last cold run.
    stop(p)
    for _ in range(3):
        t0 = time.monotonic()
        p = up(state)
        resumed.append(until_active(2, t0))
        stop(p)
    print(f"up -> both HelloServer endpoints active, fresh state: median {statistics.median(cold)*1000:.0f} ms, "
          f"min {min(cold)*1000:.0f} ms ({len(cold)} runs)")
    print(f"up -> both endpoints active, resuming the state directory: median {statistics.median(resumed)*1000:.0f} ms "
          f"({len(resumed)} runs)")

    p = up(state)
    until_active(2, time.monotonic())
    tini = None
    if shutil.which("tini"):
        tini = subprocess.Popen(["tini", "-s", "--", "sleep", "1000"])
    time.sleep(30)  # idle
    cp = status(p.pid)
    print(f"control plane idle: VmRSS {cp['VmRSS']} KiB, VmHWM {cp['VmHWM']} KiB, Pss {cp['Pss']} KiB, RssAnon {cp['RssAnon']} KiB")
    pods = os.path.join(state, ".tars", "pods")
    nodes = []
    for pod in sorted(os.listdir(pods)):
        pid = int(open(os.path.join(pods, pod, "tarsnode.pid")).read())
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        s, srv = status(pid), status(int(children[0])) if children else {}
        nodes.append(s)
        print(f"{pod}: tarsnode VmRSS {s['VmRSS']} KiB, Pss {s['Pss']} KiB, RssAnon {s['RssAnon']} KiB; "
              f"HelloServer VmRSS {srv.get('VmRSS')} KiB, Pss {srv.get('Pss')} KiB, RssAnon {srv.get('RssAnon')} KiB")
    if tini:
        t = status(tini.pid)
        n = nodes[0]
        print(f"tini (same moment): VmRSS {t['VmRSS']} KiB, Pss {t['Pss']} KiB, RssAnon {t['RssAnon']} KiB; "
              f"tarsnode/tini VmRSS {n['VmRSS']/t['VmRSS']:.1f}x, Pss {n['Pss']/t['Pss']:.1f}x, RssAnon {n['RssAnon']/t['RssAnon']:.1f}x")
        tini.kill()

    # A pod whose server never heartbeats on its own, for the keepAlive figure.
    silent = os.path.join(state, "silent")
    with open(silent, "w") as f:
        f.write("#!/bin/sh\nexec sleep 1000000\n")
    os.chmod(silent, 0o755)
    manifest = os.path.join(state, "silent.yaml")
    with open(manifest, "w") as f:
        f.write("""apiVersion: k8s.tars.io/v1beta3
kind: TServer
metadata: {name: bench-silent}
spec:
  app: Bench
  server: Silent
  subType: tars
  tars: {template: tars.default, servants: [{name: SilentObj, port: 10030, isTars: true, isTcp: true}]}
  k8s: {replicas: 1}
  release: {id: bench, image: ./silent}
""")
    env = dict(os.environ, TARS_ADMIN_URL=f"http://127.0.0.1:{PORTS['admin']}")
    subprocess.run([os.path.join(BIN, "tarsctl"), "apply", "-f", manifest], cwd=state, env=env, check=True,
                   capture_output=True)
    ip = None
    for _ in range(200):
        r = subprocess.run([os.path.join(BIN, "tarsctl"), "pods", "Bench.Silent", "-o", "json"], cwd=state, env=env,
                           capture_output=True, text=True)
        m = re.search(r'"ip" : "([0-9.]+)"', r.stdout)
        if m and '"phase" : "Running"' in r.stdout:
            ip = m.group(1)
            break
        time.sleep(0.1)
    if not ip:
        raise SystemExit("the silent pod did not start")
    subprocess.run([os.path.join(BIN, "tars-bench"), "keepalive", ip, str(PORTS["query"]),
                    os.path.join(state, ".tars", "node.secret"), "Bench", "Silent", "SilentObj", "15"], check=True)
    stop(p)
    shutil.rmtree(state)


if __name__ == "__main__":
    main()
