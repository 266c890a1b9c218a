#!/usr/bin/env python3
"""A bounded load loop for the test network (stdlib only; bounded in count and time).

  testnet-load.py JOB...     run every JOB at once, each with its own worker threads; print one
                             line per job: "JOB ok=N failed=M rs1=A rs2=B" and the first
                             failures; exit 1 when any request failed

  JOB = http:ADDR:N:CONC     N HTTP GETs of http://ADDR/ (a new TCP connection each), CONC at a
                             time, 5 s at most each
        udp:ADDR:PORT:N:CONC N UDP flows to ADDR:PORT (a fresh socket, i.e. source port, each;
                             one datagram, its echo awaited 2 s; no retry)

Only 198.18.0.0/15 addresses inside the test namespaces are used.
"""
import collections
import http.client
import socket
import sys
import threading


def http_once(addr, i):
    c = http.client.HTTPConnection(addr, 80, timeout=5)
    try:
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read().decode().strip()
        if r.status != 200:
            raise OSError("status %d" % r.status)
        return body
    finally:
        c.close()


def udp_once(addr, port, i):
    payload = b"load %d" % i
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    try:
        s.sendto(payload, (addr, port))
        data, _ = s.recvfrom(2048)
        name, _, rest = data.partition(b":")
        if rest != payload:
            raise OSError("bad echo %r" % data)
        return name.decode()
    finally:
        s.close()


def run_job(spec, results):
    parts = spec.split(":")
    if parts[0] == "http":
        addr, n, conc = parts[1], int(parts[2]), int(parts[3])
        once = lambda i: http_once(addr, i)
    else:
        addr, port, n, conc = parts[1], int(parts[2]), int(parts[3]), int(parts[4])
        once = lambda i: udp_once(addr, port, i)
    hits = collections.Counter()
    failures = []
    lock = threading.Lock()
    next_i = [0]

    def worker():
        while True:
            with lock:
                i = next_i[0]
                if i >= n:
                    return
                next_i[0] += 1
            try:
                name = once(i)
                with lock:
                    hits[name] += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    failures.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results[spec] = (hits, failures)


def main(jobs):
    results = {}
    threads = [threading.Thread(target=run_job, args=(j, results)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = False
    for j in jobs:
        hits, failures = results[j]
        ok = sum(hits.values())
        names = " ".join("%s=%d" % (k, hits[k]) for k in sorted(hits))
        print("%s ok=%d failed=%d %s" % (j, ok, len(failures), names))
        for f in failures[:5]:
            print("  failure", f)
        bad = bad or bool(failures)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
