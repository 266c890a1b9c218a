#!/usr/bin/env python3
"""Floods and the clients that must survive them, for the test network (stdlib only, bounded in
count and time; only addresses in 198.18.0.0/15, only inside the test's namespaces).

  testnet-flood.py syn VIP PORT SECS RATE SOURCES
  testnet-flood.py udp VIP PORT SECS RATE SOURCES
      spoofed TCP SYNs (or UDP datagrams "junk...") to VIP:PORT from raw sockets for SECS
      seconds at up to RATE packets/s; sources are random addresses of SOURCES, either a /16
      given as "198.19" (a network routed behind the client) or a /24 given as "198.18.0" (the
      client's own network: .0-.2, .100 and .255 left out), with random source ports. The
      packets are made before the clock starts (65536 distinct tuples, sent round robin, so a
      tuple comes back only after 65536 others). Prints "sent N SECONDS" at the end.
  testnet-flood.py server NAME PORT
      on 0.0.0.0:PORT, TCP: answer each line with "NAME " + the line (one thread per
      connection); UDP: answer datagrams that start with "req " with "NAME " + the datagram and
      ignore anything else, as a protocol server ignores malformed requests.
  testnet-flood.py client VIP PORT HTTP_PORT SECS
      for SECS seconds, at the same time: (a) one TCP connection to VIP:PORT sending a line
      every 100 ms, each answer awaited (2 s); (b) one UDP socket sending a request every 100 ms,
      each answer awaited (1 s, one resend); (c) a new UDP socket per request, every 200 ms;
      (d) `curl --max-time 5 http://VIP:HTTP_PORT/` in a loop, a new connection each, every
      200 ms. Prints one line per part: "NAME OK FAILED SLOWEST" (the slowest answer's seconds;
      curl: the slowest TCP connect), and "fail NAME T REASON" for each failure (T = seconds
      since the start).
"""
import random
import socket
import struct
import subprocess
import sys
import threading
import time

POOL = 65536


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


def source(net, rng):
    parts = [int(x) for x in net.split(".")]
    assert parts[0] == 198 and parts[1] in (18, 19), "only 198.18.0.0/15"
    if len(parts) == 2:
        return bytes(parts + [rng.randrange(0, 256), rng.randrange(1, 255)])
    assert len(parts) == 3
    while True:
        last = rng.randrange(3, 255)
        if last != 100:
            return bytes(parts + [last])


def packets(kind, vip, port, net):
    rng = random.Random("%s %s %d %s" % (kind, vip, port, net))
    dst = socket.inet_aton(vip)
    out = []
    for _ in range(POOL):
        src = source(net, rng)
        sport = rng.randrange(1024, 65536)
        if kind == "syn":
            proto = 6
            l4 = struct.pack("!HHIIBBHHH", sport, port, rng.getrandbits(32), 0, 5 << 4, 0x02,
                             64240, 0, 0)
            off = 16
        else:
            proto = 17
            payload = b"junk %08x" % rng.getrandbits(32)
            l4 = struct.pack("!HHHH", sport, port, 8 + len(payload), 0) + payload
            off = 6
        ph = src + dst + struct.pack("!BBH", 0, proto, len(l4))
        c = csum(ph + l4) or 0xFFFF
        l4 = l4[:off] + struct.pack("!H", c) + l4[off + 2:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
        out.append(ip + l4)
    return out


def flood(kind, vip, port, secs, rate, net):
    assert vip.startswith("198.18.") or vip.startswith("198.19.")
    port, secs, rate = int(port), min(float(secs), 60.0), float(rate)
    pkts = packets(kind, vip, port, net)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    to = (vip, 0)
    n, i, batch = 0, 0, 64
    start = time.monotonic()
    end = start + secs
    while True:
        now = time.monotonic()
        if now >= end:
            break
        ahead = n / rate - (now - start)
        if ahead > 0:
            time.sleep(min(ahead, end - now))
            continue
        for _ in range(batch):
            try:
                s.sendto(pkts[i], to)
                n += 1
            except OSError:
                pass  # the veth queue is full: that packet is not sent, not counted
            i = (i + 1) % POOL
    print("sent", n, "%.2f" % (time.monotonic() - start), flush=True)


def server(name, port):
    port = int(port)
    prefix = name.encode() + b" "

    def one(conn):
        try:
            f = conn.makefile("rb")
            for line in f:
                conn.sendall(prefix + line)
        except OSError:
            pass
        finally:
            conn.close()

    def tcp():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(1024)
        while True:
            c, _ = s.accept()
            threading.Thread(target=one, args=(c,), daemon=True).start()

    threading.Thread(target=tcp, daemon=True).start()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = u.recvfrom(2048)
        if data.startswith(b"req "):
            u.sendto(prefix + data, peer)


class Tally:
    def __init__(self, name, start):
        self.name, self.start, self.ok, self.failures = name, start, 0, []
        self.slowest = 0.0
        self.lock = threading.Lock()

    def good(self, secs):
        with self.lock:
            self.ok += 1
            self.slowest = max(self.slowest, secs)

    def bad(self, reason):
        with self.lock:
            self.failures.append((time.monotonic() - self.start, reason))

    def report(self):
        print(self.name, self.ok, len(self.failures), "%.3f" % self.slowest, flush=True)
        for t, r in self.failures:
            print("fail", self.name, "%.2f" % t, r, flush=True)


def answered(data, sent):
    name, _, rest = data.partition(b" ")
    return name.startswith(b"rs") and rest == sent


def long_tcp(vip, port, end, t):
    try:
        s = socket.create_connection((vip, port), timeout=5)
    except OSError as e:
        t.bad("connect: %s" % e)
        return
    s.settimeout(2)
    f = s.makefile("rb")
    i = 0
    while time.monotonic() < end:
        line = b"req tcp %d\n" % i
        try:
            t0 = time.monotonic()
            s.sendall(line)
            if answered(f.readline(), line):
                t.good(time.monotonic() - t0)
            else:
                t.bad("wrong or no answer to %d" % i)
                return
        except OSError as e:
            t.bad("%d: %s" % (i, e))
            return
        i += 1
        time.sleep(0.1)
    s.close()


def udp_ask(s, vip, port, msg, tries):
    for _ in range(tries):
        s.sendto(msg, (vip, port))
        try:
            while True:
                data, _ = s.recvfrom(2048)
                if answered(data, msg):
                    return True
        except socket.timeout:
            continue
    return False


def long_udp(vip, port, end, t):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    i = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        if udp_ask(s, vip, port, b"req udp %d" % i, 2):
            t.good(time.monotonic() - t0)
        else:
            t.bad("no answer to %d" % i)
        i += 1
        time.sleep(0.1)


def new_udp(vip, port, end, t):
    i = 0
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        t0 = time.monotonic()
        if udp_ask(s, vip, port, b"req new %d" % i, 2):
            t.good(time.monotonic() - t0)
        else:
            t.bad("no answer to %d" % i)
        s.close()
        i += 1
        time.sleep(0.2)


def curls(vip, port, end, t):
    url = "http://%s:%d/" % (vip, port)
    while time.monotonic() < end:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_connect}",
                            "--max-time", "5", url], capture_output=True, text=True)
        code, _, connect = r.stdout.partition(" ")
        if r.returncode == 0 and code == "200":
            t.good(float(connect))
        else:
            t.bad("curl exit %d code %s connect %s" % (r.returncode, code or "-", connect or "-"))
        time.sleep(0.2)


def client(vip, port, http_port, secs):
    port, http_port = int(port), int(http_port)
    start = time.monotonic()
    end = start + min(float(secs), 60.0)
    parts = [("tcp_long", long_tcp, port), ("udp_long", long_udp, port),
             ("udp_new", new_udp, port), ("curl", curls, http_port)]
    tallies, threads = [], []
    for name, f, p in parts:
        t = Tally(name, start)
        tallies.append(t)
        th = threading.Thread(target=f, args=(vip, p, end, t))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    for t in tallies:
        t.report()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd in ("syn", "udp"):
        flood(cmd, *args)
    else:
        {"server": server, "client": client}[cmd](*args)
