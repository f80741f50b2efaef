"""The log directory tarsagent's benchmark and scripts/tarsagent-order.py give the agent:
`<App>/<Server>/App.Server<s>_<i>.log` as tarsnode lays them out, 64 bytes each, every other one
10 days old (past the 5-day limit, so a first pass deletes half).
"""
import os, shutil, time


def make_logs(logs, servers, files):
    """`servers` server directories of `files` files each, ten servers to an app."""
    shutil.rmtree(logs, ignore_errors=True)
    old = time.time() - 10 * 86400
    for s in range(servers):
        d = os.path.join(logs, f"App{s // 10}", f"Server{s}")
        os.makedirs(d)
        for i in range(files):
            p = os.path.join(d, f"App.Server{s}_{i}.log")
            with open(p, "wb") as f:
                f.write(b"x" * 64)
            if i % 2 == 0:
                os.utime(p, (old, old))
