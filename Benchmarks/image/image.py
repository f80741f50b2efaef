"""Server package → image → registry, beside `tar czf` of the same files and `skopeo copy` of the
result, in interleaved rounds on one machine (ratios, not absolute times, are the figures).

A 100 MiB package of real executables (the Swift toolchain's, a fixed set), built with the
release tarsctl: `image build` (unpack the package, write the layer through tar, gzip and both
digests in one stream) + `image push` to Debian's docker-registry on loopback; beside it
`tar czf` of the unpacked files, and our push alone beside `skopeo copy` of the built image,
each to a registry with empty storage (a reproducible build's blobs would otherwise be there).
Peak RSS of each (GNU time's maximum resident set size) shows memory stays flat: the layer is
streamed, never held. A second part builds and pushes packages of 25, 100 and 400 MiB (random
bytes in 8 MiB files, which gzip cannot shrink: the layer is as large as the package) and prints
the peak RSS of each step, which must not grow with the size.
"""
import json, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARSCTL = os.path.join(ROOT, ".build/release/tarsctl")
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def timed(argv, **kw):
    """Wall seconds and peak RSS (KiB) of one run."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *argv], capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{argv[0]} failed: {out.stderr[-2000:]}")
    seconds, kib = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib)


def report(rows):
    base = sorted(s for s, _ in rows["tar czf"])[ROUNDS // 2]
    for name, values in rows.items():
        seconds = sorted(s for s, _ in values)[ROUNDS // 2]
        rss = max(k for _, k in values)
        print(f"  {name:14s} {seconds:6.2f} s  ×{seconds / base:4.2f} of tar czf   peak RSS {rss / 1024:6.1f} MiB")


def main():
    work = tempfile.mkdtemp(prefix="tars-image-bench.")
    try:
        top = os.path.join(work, "pkg", "Big")
        os.makedirs(top)
        total = 0
        for name in sorted(os.listdir("/opt/swift/usr/bin")):
            path = os.path.join("/opt/swift/usr/bin", name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            size = os.path.getsize(path)
            if total + size > 100 << 20:
                continue
            shutil.copyfile(path, os.path.join(top, name))
            total += size
        subprocess.run(["tar", "czf", os.path.join(work, "Big.tgz"), "-C", os.path.join(work, "pkg"), "Big"], check=True)
        # The registry.
        port = 5191
        with open(os.path.join(work, "htpasswd"), "w") as f:
            f.write(subprocess.run(["htpasswd", "-Bbn", "bench", "bench-pass"], capture_output=True, text=True).stdout)
        with open(os.path.join(work, "pw"), "w") as f:
            f.write("bench-pass\n")
        with open(os.path.join(work, "registry.yml"), "w") as f:
            f.write(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {work}/data}}\n"
                    f"http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd: {{realm: bench, path: {work}/htpasswd}}\n")
        auth = ["--plain-http", "--username", "bench", "--password-file", os.path.join(work, "pw")]
        rows = {"tar czf": [], "build + push": [], "push alone": [], "skopeo copy": []}

        def fresh_registry(n):
            """A registry with empty storage: every push uploads every blob."""
            shutil.rmtree(os.path.join(work, "data"), ignore_errors=True)
            p = subprocess.Popen(["docker-registry", "serve", os.path.join(work, "registry.yml")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            return p

        for r in range(ROUNDS):
            rows["tar czf"].append(timed(["tar", "czf", os.path.join(work, f"plain{r}.tgz"), "-C",
                                          os.path.join(work, "pkg"), "Big"]))
            layout = os.path.join(work, f"layout{r}")
            registry = fresh_registry(r)
            try:
                t1 = timed([TARSCTL, "image", "build", os.path.join(work, "Big.tgz"), "--server", "Test.Big",
                            "--type", "cpp", "-t", f"oci:{layout}:b"])
                t2 = timed([TARSCTL, "image", "push", f"oci:{layout}:b", f"127.0.0.1:{port}/bench/ours:1", *auth])
            finally:
                registry.terminate()
                registry.wait()
            rows["build + push"].append((t1[0] + t2[0], max(t1[1], t2[1])))
            rows["push alone"].append(t2)
            registry = fresh_registry(r)
            try:
                rows["skopeo copy"].append(timed(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds",
                                                  "bench:bench-pass", f"oci:{layout}:b",
                                                  f"docker://127.0.0.1:{port}/bench/skopeo:1"]))
            finally:
                registry.terminate()
                registry.wait()
        print(f"package: {total / (1 << 20):.1f} MiB of executables, {ROUNDS} interleaved rounds (median)")
        report(rows)
        print("peak RSS by package size (random bytes, so the layer is as large as the package):")
        for mib in (25, 100, 400):
            pkg = os.path.join(work, f"rand{mib}")
            os.makedirs(os.path.join(pkg, "Rand"))
            for i in range(mib // 8 + (1 if mib % 8 else 0)):
                with open(os.path.join(pkg, "Rand", f"part{i:03d}"), "wb") as f:
                    f.write(os.urandom(min(8, mib - 8 * i) << 20))
            tgz = os.path.join(work, f"rand{mib}.tgz")
            subprocess.run(["tar", "-I", "gzip -1", "-cf", tgz, "-C", pkg, "Rand"], check=True)
            shutil.rmtree(pkg)
            layout = os.path.join(work, f"rand-layout{mib}")
            registry = fresh_registry(0)
            try:
                b = timed([TARSCTL, "image", "build", tgz, "--server", "Test.Rand", "--type", "cpp",
                           "-t", f"oci:{layout}:r"])
                p = timed([TARSCTL, "image", "push", f"oci:{layout}:r", f"127.0.0.1:{port}/bench/rand:{mib}", *auth])
            finally:
                registry.terminate()
                registry.wait()
            print(f"  {mib:4d} MiB   build {b[0]:6.2f} s, peak RSS {b[1] / 1024:6.1f} MiB   "
                  f"push {p[0]:6.2f} s, peak RSS {p[1] / 1024:6.1f} MiB")
            shutil.rmtree(layout)
            os.remove(tgz)
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
