#!/usr/bin/env python3
"""Long-lived TCP transfers for the test network (stdlib only, bounded in count and time).

  testnet-stream.py server NAME PORT
      serve on 0.0.0.0:PORT: a client sends "SIZE RATE\\n"; the server answers "NAME\\n", then SIZE
      bytes of the pattern (byte i = i % 251) at RATE bytes/s, and closes
  testnet-stream.py client VIP PORT COUNT SIZE RATE
      COUNT transfers at once, each on its own connection; each must bring the server's name and
      exactly SIZE bytes of the pattern (checked byte for byte) within 60 s with no 15 s stall;
      prints "ok NAME BYTES SECONDS" or "broken REASON" per transfer, then "transfers OK BROKEN";
      exit 1 when any broke
  testnet-stream.py requests VIP PORT SECONDS INTERVAL
      one short transfer (100 bytes, 1 s timeout) every INTERVAL s for SECONDS s, each on a new
      connection; prints "requests OK FAILED", then "failed T" per failure (T = seconds since
      the start); exit 0
"""
import socket
import sys
import threading
import time

PATTERN = bytes(range(251)) * 64  # 16064 bytes, a whole number of periods


def serve_one(conn, name):
    try:
        conn.settimeout(30)
        req = b""
        while not req.endswith(b"\n"):
            chunk = conn.recv(64)
            if not chunk or len(req) > 64:
                return
            req += chunk
        size, rate = (int(x) for x in req.split())
        size = min(size, 64 << 20)
        conn.sendall(name.encode() + b"\n")
        sent, start, step = 0, time.monotonic(), 4096
        while sent < size:
            n = min(step, size - sent)
            off = sent % 251
            conn.sendall(PATTERN[off:off + n])
            sent += n
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


def server(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(256)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve_one, args=(conn, name), daemon=True).start()


def transfer(vip, port, size, rate, connect_timeout=5.0, stall=15.0, total=60.0):
    """Returns ("ok", name, bytes, seconds) or ("broken", reason)."""
    start = time.monotonic()
    try:
        s = socket.create_connection((vip, int(port)), timeout=connect_timeout)
    except OSError as e:
        return ("broken", "connect: %s" % e)
    try:
        s.settimeout(stall)
        s.sendall(b"%d %d\n" % (size, rate))
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(256)
            if not chunk:
                return ("broken", "closed before the name")
            buf += chunk
        name, rest = buf.split(b"\n", 1)
        got = 0

        def check(data):
            nonlocal got
            off = got % 251
            if data != PATTERN[off:off + len(data)]:
                return False
            got += len(data)
            return True

        for i in range(0, len(rest), 4096):
            if not check(rest[i:i + 4096]):
                return ("broken", "bad bytes at %d" % got)
        while got < size:
            if time.monotonic() - start > total:
                return ("broken", "too slow: %d of %d bytes" % (got, size))
            chunk = s.recv(min(4096, size - got))
            if not chunk:
                return ("broken", "closed at %d of %d bytes" % (got, size))
            if not check(chunk):
                return ("broken", "bad bytes at %d" % got)
        if s.recv(1):
            return ("broken", "more than %d bytes" % size)
        return ("ok", name.decode(), got, time.monotonic() - start)
    except OSError as e:
        return ("broken", "%s after %.1f s" % (e, time.monotonic() - start))
    finally:
        s.close()


def client(vip, port, count, size, rate):
    results = [None] * int(count)

    def run(i):
        results[i] = transfer(vip, port, int(size), int(rate))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(int(count))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = 0
    for r in results:
        if r[0] == "ok":
            ok += 1
            print("ok %s %d %.2f" % (r[1], r[2], r[3]))
        else:
            print("broken %s" % r[1])
    print("transfers %d %d" % (ok, len(results) - ok), flush=True)
    sys.exit(0 if ok == len(results) else 1)


def requests(vip, port, seconds, interval):
    start = time.monotonic()
    ok, failed = 0, []
    n = 0
    while time.monotonic() - start < float(seconds):
        t = time.monotonic() - start
        r = transfer(vip, port, 100, 0, connect_timeout=1.0, stall=1.0, total=1.0)
        if r[0] == "ok":
            ok += 1
        else:
            failed.append(t)
        n += 1
        nxt = start + n * float(interval)
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print("requests %d %d" % (ok, len(failed)))
    for t in failed:
        print("failed %.2f" % t)
    sys.stdout.flush()


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "server" and len(sys.argv) == 4:
        server(sys.argv[2], sys.argv[3])
    elif cmd == "client" and len(sys.argv) == 7:
        client(*sys.argv[2:])
    elif cmd == "requests" and len(sys.argv) == 6:
        requests(*sys.argv[2:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
