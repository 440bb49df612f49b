# The same operations through a binary-protocol client (python3-binary-memcached
# or python3-pylibmc with binary=True), one line per result: run against
# memcached 1.6 and Rebound by e2e/binclients_test.go, the outputs compared.
# Usage: binary_clients.py ADDR bmemcached|pylibmc [USER PASSWORD]
import sys, bmemcached, pylibmc
addr, which = sys.argv[1], sys.argv[2]
user = sys.argv[3] if len(sys.argv) > 3 else None
pw = sys.argv[4] if len(sys.argv) > 4 else None
if which == "bmemcached":
    c = bmemcached.Client([addr], user, pw)
else:
    c = pylibmc.Client([addr], binary=True, behaviors={"cas": True})
def p(name, f):
    try:
        v = f()
    except Exception as e:
        v = type(e).__name__
    print(name, repr(v))
pre = which + ":"
import functools
p("set", lambda: c.set(pre + "k", "v"))
p("get", lambda: c.get(pre + "k"))
p("get miss", lambda: c.get(pre + "missing"))
p("add exists", lambda: c.add(pre + "k", "x"))
p("add new", lambda: c.add(pre + "n", "1"))
p("replace", lambda: c.replace(pre + "k", "r"))
p("replace miss", lambda: c.replace(pre + "zz", "x"))
p("incr", lambda: c.incr(pre + "n", 5))
p("decr", lambda: c.decr(pre + "n", 2))
p("get n", lambda: c.get(pre + "n"))
if which == "pylibmc":
    p("append", lambda: c.append(pre + "k", "+a"))
    p("prepend", lambda: c.prepend(pre + "k", "p+"))
    p("get k", lambda: c.get(pre + "k"))
    p("touch", lambda: c.touch(pre + "b", 100))
v, cas = c.gets(pre + "n")
print("gets", repr(v))
p("cas ok", lambda: c.cas(pre + "n", "100", cas))
p("cas stale", lambda: c.cas(pre + "n", "200", cas))
p("get n", lambda: c.get(pre + "n"))
p("set_multi", lambda: c.set_multi({pre + "a": "1", pre + "b": "2"}))
p("get_multi", lambda: sorted((k[len(pre):], v) for k, v in c.get_multi([pre + "a", pre + "b", pre + "missing", pre + "n"]).items()))
p("delete", lambda: c.delete(pre + "a"))
p("delete again", lambda: c.delete(pre + "a"))
p("big", lambda: c.set(pre + "big", "x" * 500000))
p("big len", lambda: len(c.get(pre + "big")))
p("bytes", lambda: c.set(pre + "bin", b"\x00\x01\xff"))
p("bytes get", lambda: c.get(pre + "bin"))
p("flush", lambda: c.flush_all())
p("after flush", lambda: c.get(pre + "b"))
