#!/usr/bin/python3
"""An independent ketama ring, laid out as libmemcached's weighted ketama
and twemproxy's "distribution: ketama" / "hash: md5" do, every server of
weight 1. The Go tests compare client.Ring with it.

Usage: ketama.py SERVER... < keys   (one key a line; prints each key's server)

- A server's name is "host:port" as given, or just "host" when the port is
  11211 (libmemcached's default-port rule, which twemproxy keeps).
- Points per server: floor(pct * 160 / 4 * n + 1e-10) * 4 with pct = 1/n,
  in single-precision float as the C code computes it.
- For i in 0 .. points/4 - 1: md5("name-i") gives four points, its 16
  bytes read as four little-endian 32-bit words.
- A key's hash is md5(key)'s first four bytes, little-endian; its server
  owns the first point >= the hash, wrapping to the lowest point.
"""
import bisect
import hashlib
import math
import struct
import sys


def f32(x):
    """Round x to single precision, as a C float holds it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def points_per_server(n):
    pct = f32(1.0 / n)
    share = f32(f32(f32(pct * 160) / 4) * n)
    return int(math.floor(share + 0.0000000001)) * 4


def ring(servers):
    pts = []
    per = points_per_server(len(servers))
    for idx, server in enumerate(servers):
        host, _, port = server.rpartition(":")
        name = host if port == "11211" else server
        for i in range(per // 4):
            digest = hashlib.md5(("%s-%d" % (name, i)).encode()).digest()
            for word in struct.unpack("<4I", digest):
                pts.append((word, idx))
    pts.sort()
    return pts


def pick(pts, key):
    h = struct.unpack("<I", hashlib.md5(key).digest()[:4])[0]
    i = bisect.bisect_left(pts, (h, -1))
    if i == len(pts):
        i = 0
    return pts[i][1]


def main():
    servers = sys.argv[1:]
    if not servers:
        sys.exit("usage: ketama.py SERVER... < keys")
    pts = ring(servers)
    out = []
    for line in sys.stdin.buffer:
        key = line.rstrip(b"\n")
        out.append(servers[pick(pts, key)])
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
