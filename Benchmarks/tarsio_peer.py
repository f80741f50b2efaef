"""The peer for the codec figures: tarsio 0.5.3 (Rust core) with typed Structs, on the same bytes
tars-bench just wrote. Python's call overhead is part of its figure."""
import time
from typing import Annotated

import tarsio


class RequestPacket(tarsio.Struct):
    iVersion: Annotated[int, 1]
    cPacketType: Annotated[int, 2]
    iMessageType: Annotated[int, 3]
    iRequestId: Annotated[int, 4]
    sServantName: Annotated[str, 5]
    sFuncName: Annotated[str, 6]
    sBuffer: Annotated[bytes, 7]
    iTimeout: Annotated[int, 8]
    context: Annotated[dict[str, str], 9]
    status: Annotated[dict[str, str], 10]


class EndpointF(tarsio.Struct):
    host: Annotated[str, 0]
    port: Annotated[int, 1]
    timeout: Annotated[int, 2]
    istcp: Annotated[int, 3]
    grid: Annotated[int, 4]
    groupworkid: Annotated[int, 5] = 0
    grouprealid: Annotated[int, 6] = 0
    setId: Annotated[str, 7] = ""
    qos: Annotated[int, 8] = 0
    bakFlag: Annotated[int, 9] = 0
    weight: Annotated[int, 11] = 0
    weightType: Annotated[int, 12] = 0
    authType: Annotated[int, 13] = 0
    nodeName: Annotated[str, 14] = ""


class FindResult(tarsio.Struct):
    ret: Annotated[list[EndpointF], 0]


def measure(fn):
    rates = []
    for _ in range(5):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.2:
            for _ in range(1000):
                fn()
            n += 1000
        rates.append(n / (time.perf_counter() - start))
    return sorted(rates)[2]


def report(name, rate, size):
    print(f"{name:<44} {rate:12.0f} ops/s {rate * size / 1048576:9.1f} MB/s  ({size} bytes)")


req = bytes.fromhex(open("/tmp/tars-bench-request.hex").read())
eps = bytes.fromhex(open("/tmp/tars-bench-endpoints.hex").read())
r = tarsio.decode(req, RequestPacket)
e = tarsio.decode(eps, FindResult)
assert tarsio.encode(r) == req and tarsio.encode(e) == eps, "tarsio must produce our bytes"
print("-- peer: tarsio", getattr(tarsio, "__version__", ""))
report("tarsio encode RequestPacket", measure(lambda: tarsio.encode(r)), len(req))
report("tarsio decode RequestPacket", measure(lambda: tarsio.decode(req, RequestPacket)), len(req))
report("tarsio encode vector<EndpointF> x100", measure(lambda: tarsio.encode(e)), len(eps))
report("tarsio decode vector<EndpointF> x100", measure(lambda: tarsio.decode(eps, FindResult)), len(eps))
