"""An API server over TLS for tarsagent to watch, outside a cluster: `tars-bench kube-api` (the
embedded store behind KubeFront, with pods on a node) behind socat's TLS, with an RSA 2048
certificate as kubeadm makes them. Used by Benchmarks/agent/agent.py and
scripts/tarsagent-order.py.
"""
import os, socket, subprocess, sys, time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(work, bench, node, pods):
    """Starts both in `work`; returns (processes to kill, URL, CA file, token file)."""
    token = os.path.join(work, "token")
    with open(token, "w") as f:
        f.write("agent-token\n")
    key, cert = os.path.join(work, "api.key"), os.path.join(work, "api.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    api = subprocess.Popen([bench, "kube-api", "agent-token", node, str(pods)], stdout=subprocess.PIPE, text=True)
    line = api.stdout.readline().split()
    if line[:1] != ["ready"]:
        api.kill()
        sys.exit(f"tars-bench kube-api did not start: {line}")
    port = free_port()
    tls = subprocess.Popen(["socat", f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},verify=0",
                            f"TCP:127.0.0.1:{line[1]}"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return [api, tls], f"https://127.0.0.1:{port}", cert, token
