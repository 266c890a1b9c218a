#!/usr/bin/env python3
"""Real-server and client helpers for the client-address tests (stdlib only, bounded in time):
the PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) and DPVS's UOA, read here
by code written from the specifications, independently of rvs's.

Servers (run in a real server's namespace until killed):
  testnet-proxy.py tcp NAME ADDR PORT [greet]
      every connection starts with a PROXY header (v1 or v2; a connection without one is
      closed); with "greet" the server speaks first: "220 NAME CLIENT\\r\\n" right after the
      header. Then one command line:
        WHO            -> "NAME CLIENT\\n"
        UP N           -> reads N bytes, "NAME CLIENT SHA256\\n"
        DOWN N         -> N bytes of the test pattern
  testnet-proxy.py udp NAME ADDR PORT
      every datagram must start with a PROXY v2 header: answers "NAME CLIENT PAYLOAD"
      (or "NAME noheader PAYLOAD")
  testnet-proxy.py uoa NAME ADDR PORT
      reads DPVS's UOA in both forms: the "option protocol" (IP protocol 248) on a raw socket,
      the IPv4 option 31 through IP_RECVOPTS; remembers the client of each (source, port) as
      the uoa kernel module does; answers "NAME CLIENT PAYLOAD FORM" (FORM opp, ipo or
      remembered, CLIENT "none" when never told)

Clients (print one line and exit; 10 s limit):
  testnet-proxy.py who|greet HOST PORT       "LOCAL REPLY"
  testnet-proxy.py up HOST PORT N            "LOCAL REPLY" after sending N pattern bytes
  testnet-proxy.py down HOST PORT N          "LOCAL SHA256" of what came back
  testnet-proxy.py dgram HOST PORT MSG [K]   "LOCAL REPLY" for K datagrams from one socket

CLIENT and LOCAL are "ADDR:PORT".
"""
import hashlib
import select
import socket
import struct
import sys
import threading

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pattern(n):
    return bytes(((i * 2654435761) >> 13) & 0xFF for i in range(n))


def read_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(min(65536, n - len(buf)))
        if not chunk:
            raise EOFError("short read")
        buf += chunk
    return bytes(buf)


def parse_v2(buf):
    """(client or None, header length) of a v2 header at the start of buf, or None."""
    if len(buf) < 16 or buf[:12] != V2_SIG:
        return None
    ver_cmd, fam = buf[12], buf[13]
    if ver_cmd >> 4 != 2:
        return None
    length = struct.unpack("!H", buf[14:16])[0]
    if len(buf) < 16 + length:
        return None
    if ver_cmd & 0xF == 0:
        return (None, 16 + length)  # LOCAL
    if fam >> 4 == 1 and length >= 12:
        src = socket.inet_ntoa(buf[16:20])
        sport = struct.unpack("!H", buf[24:26])[0]
        return ("%s:%d" % (src, sport), 16 + length)
    if fam >> 4 == 2 and length >= 36:
        src = socket.inet_ntop(socket.AF_INET6, buf[16:32])
        sport = struct.unpack("!H", buf[48:50])[0]
        return ("[%s]:%d" % (src, sport), 16 + length)
    return (None, 16 + length)


def read_header(conn):
    """The client a connection's PROXY header names (v1 or v2)."""
    first = read_exact(conn, 12)
    if first == V2_SIG:
        rest = read_exact(conn, 4)
        length = struct.unpack("!H", rest[2:4])[0]
        body = read_exact(conn, length)
        got = parse_v2(first + rest + body)
        if got is None:
            raise ValueError("bad v2 header")
        return got[0]
    if not first.startswith(b"PROXY "):
        raise ValueError("no PROXY header: %r" % first)
    line = bytearray(first)
    while not line.endswith(b"\r\n"):
        if len(line) >= 107:
            raise ValueError("v1 line too long")
        line += read_exact(conn, 1)
    words = line[:-2].decode().split(" ")
    if words[1] in ("TCP4", "TCP6") and len(words) == 6:
        if words[1] == "TCP4":
            socket.inet_aton(words[2])
            return "%s:%d" % (words[2], int(words[4]))
        return "[%s]:%d" % (words[2], int(words[4]))
    return None


def read_line(conn):
    line = bytearray()
    while not line.endswith(b"\n"):
        line += read_exact(conn, 1)
        if len(line) > 100:
            raise ValueError("command too long")
    return line.decode().strip()


def tcp_session(conn, name, greet):
    try:
        conn.settimeout(30)
        client = read_header(conn)
        if greet:
            conn.sendall(("220 %s %s\r\n" % (name, client)).encode())
        cmd = read_line(conn).split()
        if cmd[0] == "WHO":
            conn.sendall(("%s %s\n" % (name, client)).encode())
        elif cmd[0] == "UP":
            data = read_exact(conn, int(cmd[1]))
            digest = hashlib.sha256(data).hexdigest()
            conn.sendall(("%s %s %s\n" % (name, client, digest)).encode())
        elif cmd[0] == "DOWN":
            conn.sendall(pattern(int(cmd[1])))
    except (OSError, ValueError, EOFError, IndexError) as e:
        sys.stderr.write("session: %s\n" % e)
    finally:
        conn.close()


def tcp_server(name, addr, port, greet=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=tcp_session, args=(conn, name, greet == "greet"), daemon=True).start()


def udp_server(name, addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    while True:
        data, peer = s.recvfrom(4096)
        got = parse_v2(data)
        if got is None:
            reply = b"%s noheader %s" % (name.encode(), data)
        else:
            client, n = got
            reply = b"%s %s %s" % (name.encode(), str(client).encode(), data[n:])
        s.sendto(reply, peer)


IP_RECVOPTS = 6
IP_OPTIONS = 4  # the cmsg Linux uses is IP_RECVOPTS itself (ip_cmsg_recv_opts)
IPPROTO_OPT = 248


def uoa_option(opts):
    """The client in a UOA option (type 31, length 8) among IPv4 options, or None."""
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            return None
        length = opts[i + 1]
        if kind == 31 and length == 8 and i + 8 <= len(opts):
            port = struct.unpack("!H", opts[i + 2:i + 4])[0]
            return "%s:%d" % (socket.inet_ntoa(opts[i + 4:i + 8]), port)
        i += length
    return None


def uoa_server(name, addr, port):
    port = int(port)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IP, IP_RECVOPTS, 1)
    u.bind((addr, port))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_OPT)
    known = {}
    while True:
        ready, _, _ = select.select([u, raw], [], [])
        for sock in ready:
            if sock is raw:
                pkt, _ = raw.recvfrom(65535)
                ihl = (pkt[0] & 0xF) * 4
                opp = pkt[ihl:]
                if len(opp) < 4 or opp[0] >> 4 != 1 or opp[1] != 17:
                    continue
                olen = struct.unpack("!H", opp[2:4])[0]
                client = uoa_option(opp[4:olen])
                udp = opp[olen:]
                if len(udp) < 8 or struct.unpack("!H", udp[2:4])[0] != port:
                    continue
                src = socket.inet_ntoa(pkt[12:16])
                sport = struct.unpack("!H", udp[0:2])[0]
                payload = udp[8:struct.unpack("!H", udp[4:6])[0]]
                if client:
                    known[(src, sport)] = client
                form = "opp"
            else:
                payload, anc, _, (src, sport) = u.recvmsg(4096, socket.CMSG_SPACE(40))
                client = None
                for level, kind, data in anc:
                    if level == socket.IPPROTO_IP and kind in (IP_OPTIONS, IP_RECVOPTS):
                        client = uoa_option(data)
                if client:
                    known[(src, sport)] = client
                    form = "ipo"
                else:
                    client = known.get((src, sport), "none")
                    form = "remembered"
            u.sendto(b"%s %s %s %s" % (name.encode(), client.encode(), payload, form.encode()), (src, sport))


def local(s):
    a, p = s.getsockname()[:2]
    return "%s:%d" % (a, p)


def tcp_client(mode, host, port, n=None):
    s = socket.create_connection((host, int(port)), timeout=10)
    me = local(s)
    if mode == "greet":
        # Say nothing until the server speaks.
        line = bytearray()
        while not line.endswith(b"\n"):
            line += read_exact(s, 1)
        s.sendall(b"WHO\n")
        reply = line.decode().strip() + " | " + read_line(s)
    elif mode == "who":
        s.sendall(b"WHO\n")
        reply = read_line(s)
    elif mode == "up":
        s.sendall(b"UP %d\n" % int(n) + pattern(int(n)))
        reply = read_line(s)
    else:
        s.sendall(b"DOWN %d\n" % int(n))
        reply = hashlib.sha256(read_exact(s, int(n))).hexdigest()
    print(me, reply)


def dgram_client(host, port, msg, k="1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((host, int(port)))
    for i in range(int(k)):
        s.send(("%s %d" % (msg, i)).encode())
        print(local(s), s.recv(4096).decode())


def main(argv):
    mode = argv[0]
    if mode == "tcp":
        tcp_server(*argv[1:])
    elif mode == "udp":
        udp_server(*argv[1:])
    elif mode == "uoa":
        uoa_server(*argv[1:])
    elif mode in ("who", "greet", "up", "down"):
        tcp_client(mode, *argv[1:])
    elif mode == "dgram":
        dgram_client(*argv[1:])
    else:
        sys.exit("unknown mode %s" % mode)


if __name__ == "__main__":
    main(sys.argv[1:])
