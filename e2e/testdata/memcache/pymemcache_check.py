"""Drive a memcached-protocol server over TCP with pymemcache, a real client.

Usage: /usr/bin/python3 pymemcache_check.py HOST PORT [cross-set KEY VALUE |
cross-get KEY VALUE]

With HOST PORT alone it runs every check below and exits 0, printing
"pymemcache: N checks passed"; on the first mismatch it prints "FAIL: ..."
and exits 1. The cross-set and cross-get forms set a key, or check that a
key holds a value, for the test that reads with the other protocol.

Every check is bounded: the client has socket timeouts, and the expiry
checks poll for at most a few seconds.
"""

import sys
import time

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError

checks = 0


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def expect(what, got, want):
    global checks
    checks += 1
    if got != want:
        fail("%s: got %r, want %r" % (what, got, want))


def poll(what, cond, limit=4.0):
    """Wait until cond() is true, for at most limit seconds."""
    global checks
    checks += 1
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            fail("%s: not true after %.1fs" % (what, limit))
        time.sleep(0.05)


def client(host, port):
    # default_noreply=False: every storage command waits for its reply, so
    # that a wrong reply is seen; the noreply checks ask for it explicitly.
    return Client((host, port), connect_timeout=3, timeout=5,
                  default_noreply=False)


def run(c):
    global checks
    expect("version", isinstance(c.version(), bytes), True)
    expect("flush_all", c.flush_all(), True)

    # set / get / get_many
    expect("set", c.set("k1", b"v1"), True)
    expect("get", c.get("k1"), b"v1")
    expect("get missing", c.get("missing"), None)
    expect("set flags", c.set("k2", b"v2", flags=42), True)
    expect("set k3", c.set("k3", b""), True)
    expect("get empty value", c.get("k3"), b"")
    expect("get_many", c.get_many(["k1", "k2", "k3", "missing"]),
           {"k1": b"v1", "k2": b"v2", "k3": b""})
    expect("overwrite", c.set("k1", b"v1b"), True)
    expect("get after overwrite", c.get("k1"), b"v1b")

    # gets / cas
    v, cas = c.gets("k1")
    expect("gets value", v, b"v1b")
    expect("gets cas is an integer", isinstance(cas, bytes) and cas.isdigit(), True)
    expect("cas ok", c.cas("k1", b"v1c", cas), True)
    expect("get after cas", c.get("k1"), b"v1c")
    expect("cas stale", c.cas("k1", b"v1d", cas), False)
    expect("get after stale cas", c.get("k1"), b"v1c")
    expect("cas missing", c.cas("nokey", b"x", cas), None)
    v2, cas2 = c.gets("k1")
    expect("gets after cas", v2, b"v1c")
    expect("cas changed", cas2 != cas, True)

    # add / replace
    expect("add new", c.add("a1", b"x"), True)
    expect("add existing", c.add("a1", b"y"), False)
    expect("get after add", c.get("a1"), b"x")
    expect("replace existing", c.replace("a1", b"z"), True)
    expect("replace missing", c.replace("nokey", b"z"), False)
    expect("get after replace", c.get("a1"), b"z")
    expect("get replace missing", c.get("nokey"), None)

    # append / prepend
    expect("append", c.append("a1", b"-tail"), True)
    expect("prepend", c.prepend("a1", b"head-"), True)
    expect("get after append/prepend", c.get("a1"), b"head-z-tail")
    expect("append missing", c.append("nokey", b"x"), False)
    expect("prepend missing", c.prepend("nokey", b"x"), False)

    # incr / decr
    expect("set counter", c.set("n", b"10"), True)
    expect("incr", c.incr("n", 5), 15)
    expect("decr", c.decr("n", 3), 12)
    expect("decr below zero clamps", c.decr("n", 100), 0)
    expect("incr missing", c.incr("nokey", 1), None)
    expect("decr missing", c.decr("nokey", 1), None)
    expect("set big counter", c.set("n", b"18446744073709551615"), True)
    expect("incr wraps at 2^64", c.incr("n", 2), 1)
    # memcached rewrites a shorter result in place, padded with spaces
    # ("1" + 19 spaces here); a client reads either as 1.
    expect("get counter", c.get("n").rstrip(b" "), b"1")
    expect("set non-numeric", c.set("nn", b"abc"), True)
    try:
        c.incr("nn", 1)
        fail("incr of a non-numeric value did not raise")
    except MemcacheError:
        pass
    expect("connection usable after client error", c.get("n").rstrip(b" "), b"1")

    # delete
    expect("delete", c.delete("k2"), True)
    expect("get deleted", c.get("k2"), None)
    expect("delete missing", c.delete("k2"), False)

    # noreply: nothing comes back, and the next command's reply is its own
    expect("set noreply", c.set("nr", b"1", noreply=True), True)
    expect("add noreply", c.add("nr2", b"2", noreply=True), True)
    expect("append noreply", c.append("nr", b"x", noreply=True), True)
    expect("incr noreply", c.incr("nr2", 5, noreply=True), None)
    expect("get after noreply", c.get_many(["nr", "nr2"]), {"nr": b"1x", "nr2": b"7"})
    expect("delete noreply", c.delete("nr", noreply=True), True)
    expect("get after delete noreply", c.get("nr"), None)
    expect("flush_all noreply", c.flush_all(noreply=True), True)
    expect("get after flush noreply", c.get("nr2"), None)

    # a 100 KB value and a binary-ish one
    big = bytes((i * 7 + 13) % 256 for i in range(100 * 1024))
    expect("set 100 KB", c.set("big", big), True)
    expect("get 100 KB", c.get("big"), big)
    raw = b"\x00\r\nEND\r\nVALUE x 0 1\r\n\xff\xfe" + bytes(range(256))
    expect("set binary", c.set("bin", raw), True)
    expect("get binary", c.get("bin"), raw)
    expect("get_many binary and big", c.get_many(["bin", "big"]), {"bin": raw, "big": big})

    # expiry: exptime 1 is gone within about 2 s; a long one stays
    expect("set expiring", c.set("exp", b"soon", expire=1), True)
    expect("set lasting", c.set("last", b"stays", expire=3600), True)
    expect("get before expiry", c.get("exp"), b"soon")
    poll("item with exptime 1 expires", lambda: c.get("exp") is None)
    expect("long exptime still there", c.get("last"), b"stays")

    # touch: shortens a lifetime; on a missing key it says so
    expect("touch", c.touch("last", 1), True)
    expect("touch missing", c.touch("nokey", 1), False)
    poll("touched item expires", lambda: c.get("last") is None)

    # negative exptime: immediately expired
    expect("set negative exptime", c.set("neg", b"x", expire=-1), True)
    expect("get negative exptime", c.get("neg"), None)

    # flush_all
    expect("set before flush", c.set("f", b"1"), True)
    expect("flush_all", c.flush_all(), True)
    expect("get after flush", c.get("f"), None)
    expect("get_many after flush", c.get_many(["f", "k1", "big"]), {})

    # stats: the general counters, counting what this client did
    before = c.stats()
    for k in (b"pid", b"uptime", b"version", b"curr_items", b"cmd_get",
              b"cmd_set", b"get_hits", b"get_misses"):
        if k not in before:
            fail("stats: no %r in %r" % (k, sorted(before)))
    checks += 1
    # A key no earlier run used: flush_all is lazy (in memcached too), so
    # replacing a flushed key may leave curr_items as it was.
    fresh = "stats-new-%d" % time.time_ns()
    c.set(fresh, b"1")
    c.get(fresh)
    c.get("nokey")
    after = c.stats()
    expect("stats cmd_set counts", after[b"cmd_set"] - before[b"cmd_set"], 1)
    expect("stats cmd_get counts", after[b"cmd_get"] - before[b"cmd_get"], 2)
    expect("stats get_hits counts", after[b"get_hits"] - before[b"get_hits"], 1)
    expect("stats get_misses counts", after[b"get_misses"] - before[b"get_misses"], 1)
    expect("stats curr_items counts a new key", after[b"curr_items"] - before[b"curr_items"], 1)


def main():
    if len(sys.argv) < 3:
        fail("usage: pymemcache_check.py HOST PORT [cross-set|cross-get KEY VALUE]")
    c = client(sys.argv[1], int(sys.argv[2]))
    try:
        if len(sys.argv) == 6 and sys.argv[3] == "cross-set":
            expect("cross set", c.set(sys.argv[4], sys.argv[5].encode()), True)
        elif len(sys.argv) == 6 and sys.argv[3] == "cross-get":
            expect("cross get", c.get(sys.argv[4]), sys.argv[5].encode())
        elif len(sys.argv) == 3:
            run(c)
        else:
            fail("bad arguments: %r" % sys.argv[1:])
    except (MemcacheError, OSError) as e:
        fail("after %d checks: %s: %s" % (checks, type(e).__name__, e))
    finally:
        c.close()
    print("pymemcache: %d checks passed" % checks, flush=True)


if __name__ == "__main__":
    main()
