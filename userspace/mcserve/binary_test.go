package mcserve_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	mc "github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// The binary differential test: the same packets to memcached 1.6 and to
// mcserve, the responses compared byte for byte. CAS values are numbered
// by each server its own way: every CAS in a response is replaced by its
// order of first appearance on that connection (1, 2, ...), and a request
// may carry "the last CAS this peer answered" (casLast) or that plus one
// (casWrong).

const (
	casNone  = 0
	casLast  = ^uint64(0)
	casWrong = ^uint64(0) - 1
)

// bp describes one request packet.
type bp struct {
	op     mc.BinaryOp
	key    string
	extras []byte
	value  string
	cas    uint64
	opaque uint32
	raw    []byte // sent as is instead
}

func packet(op mc.BinaryOp, opaque uint32, cas uint64, extras []byte, key, value string) []byte {
	b := mc.AppendBinaryHeader(nil, mc.BinaryHeader{
		Magic: mc.BinaryRequest, Op: op, KeyLen: uint16(len(key)), ExtLen: uint8(len(extras)),
		BodyLen: uint32(len(extras) + len(key) + len(value)), Opaque: opaque, CAS: cas,
	})
	b = append(b, extras...)
	b = append(b, key...)
	return append(b, value...)
}

func (p bp) bytes(lastCAS uint64) []byte {
	if p.raw != nil {
		return p.raw
	}
	cas := p.cas
	switch cas {
	case casLast:
		cas = lastCAS
	case casWrong:
		cas = lastCAS + 1000
	}
	opaque := p.opaque
	if opaque == 0 {
		opaque = 0x01020304
	}
	return packet(p.op, opaque, cas, p.extras, p.key, p.value)
}

func setExt(flags, exp uint32) []byte {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:], flags)
	binary.BigEndian.PutUint32(b[4:], exp)
	return b[:]
}

func expExt(exp uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], exp)
	return b[:]
}

func incrExt(delta, initial uint64, exp uint32) []byte {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:], delta)
	binary.BigEndian.PutUint64(b[8:], initial)
	binary.BigEndian.PutUint32(b[16:], exp)
	return b[:]
}

// binPeer is one server's binary connection.
type binPeer struct {
	name    string
	addr    string
	conn    net.Conn
	lastCAS uint64
	casIDs  map[uint64]uint64
}

func (p *binPeer) dial(t *testing.T) {
	if p.conn != nil {
		p.conn.Close()
	}
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.conn = c
	t.Cleanup(func() { c.Close() })
}

const sentinelOpaque = 0xfeedf00d

// exchange sends the packets and a sentinel noop, and reads responses
// until the sentinel's (or EOF: closed). It returns the responses with
// their CAS numbered, and whether the server closed.
func (p *binPeer) exchange(t *testing.T, step []bp) ([]byte, bool) {
	t.Helper()
	var req []byte
	for _, q := range step {
		req = append(req, q.bytes(p.lastCAS)...)
	}
	req = append(req, packet(mc.OpNoop, sentinelOpaque, 0, nil, "", "")...)
	_ = p.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.conn.Write(req); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("%s: write: %v", p.name, err)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		// complete packets so far: is the last one the sentinel?
		off, done := 0, false
		for {
			h, ok := mc.ParseBinaryHeader(got[off:])
			if !ok || len(got)-off < h.PacketLen() {
				break
			}
			if h.Opaque == sentinelOpaque && h.Op == mc.OpNoop {
				done = true
				got = got[:off]
				break
			}
			off += h.PacketLen()
		}
		if done {
			return p.number(t, got), false
		}
		n, err := p.conn.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
			return append(p.number(t, got), "<EOF>"...), true
		}
		if err != nil {
			t.Fatalf("%s: read: %v after % x", p.name, err, got)
		}
	}
}

// number replaces every response's CAS by its order of appearance.
func (p *binPeer) number(t *testing.T, b []byte) []byte {
	b = bytes.Clone(b)
	for off := 0; ; {
		h, ok := mc.ParseBinaryHeader(b[off:])
		if !ok || len(b)-off < h.PacketLen() {
			return b
		}
		if h.CAS != 0 {
			p.lastCAS = h.CAS
			id, ok := p.casIDs[h.CAS]
			if !ok {
				id = uint64(len(p.casIDs) + 1)
				p.casIDs[h.CAS] = id
			}
			binary.BigEndian.PutUint64(b[off+16:], id)
		}
		off += h.PacketLen()
	}
}

type binPair struct{ oracle, ours *binPeer }

func newBinPair(t *testing.T, h *mcserve.Handler, oracle string) *binPair {
	p := &binPair{
		oracle: &binPeer{name: "memcached", addr: oracle, casIDs: map[uint64]uint64{}},
		ours:   &binPeer{name: "rebound", addr: serveTCP(t, h), casIDs: map[uint64]uint64{}},
	}
	p.oracle.dial(t)
	p.ours.dial(t)
	return p
}

// same runs one step on both and fails on a difference.
func (p *binPair) same(t *testing.T, name string, step []bp) bool {
	t.Helper()
	want, wc := p.oracle.exchange(t, step)
	got, gc := p.ours.exchange(t, step)
	if !bytes.Equal(want, got) {
		t.Errorf("%s:\nmemcached % x\nrebound   % x", name, want[:min(len(want), 200)], got[:min(len(got), 200)])
		return false
	}
	if wc != gc {
		t.Errorf("%s: memcached closed %v, rebound closed %v", name, wc, gc)
	}
	if wc {
		p.oracle.dial(t)
		p.ours.dial(t)
	}
	return true
}

func binHandler(t testing.TB, version string) *mcserve.Handler {
	return mcserve.New(mcserve.Config{Store: store.New(store.Config{}), Version: version, Threads: 1})
}

// binSteps are the differential steps: every command, quiet forms, CAS,
// errors, pipelines.
func binSteps() []struct {
	name string
	step []bp
} {
	big := strings.Repeat("x", 1536<<10)
	long := strings.Repeat("k", 251)
	keyPastBody := packet(mc.OpGet, 7, 0, nil, "abc", "")
	binary.BigEndian.PutUint32(keyPastBody[8:], 1)
	return []struct {
		name string
		step []bp
	}{
		{"get miss", []bp{{op: mc.OpGet, key: "a"}}},
		{"getk miss", []bp{{op: mc.OpGetK, key: "a"}}},
		{"getq/getkq miss are silent", []bp{{op: mc.OpGetQ, key: "a"}, {op: mc.OpGetKQ, key: "a"}}},
		{"set", []bp{{op: mc.OpSet, key: "a", extras: setExt(0xdeadbeef, 0), value: "hello"}}},
		{"get hit", []bp{{op: mc.OpGet, key: "a", opaque: 99}}},
		{"getk hit", []bp{{op: mc.OpGetK, key: "a"}}},
		{"getq/getkq hit", []bp{{op: mc.OpGetQ, key: "a"}, {op: mc.OpGetKQ, key: "a"}}},
		{"setq silent", []bp{{op: mc.OpSetQ, key: "b", extras: setExt(1, 0), value: "v"}, {op: mc.OpGet, key: "b"}}},
		{"empty value", []bp{{op: mc.OpSet, key: "e", extras: setExt(0, 0)}, {op: mc.OpGetK, key: "e"}}},
		{"binary key and value", []bp{{op: mc.OpSet, key: "k y\x00\r\n", extras: setExt(0, 0), value: "\x00\x01\r\n"}, {op: mc.OpGetK, key: "k y\x00\r\n"}}},
		{"add exists", []bp{{op: mc.OpAdd, key: "a", extras: setExt(0, 0), value: "x"}, {op: mc.OpAddQ, key: "a", extras: setExt(0, 0), value: "x"}}},
		{"add new", []bp{{op: mc.OpAdd, key: "c", extras: setExt(3, 0), value: "x"}, {op: mc.OpAddQ, key: "d", extras: setExt(0, 0), value: "y"}, {op: mc.OpGetK, key: "d"}}},
		{"replace missing", []bp{{op: mc.OpReplace, key: "zz", extras: setExt(0, 0), value: "x"}, {op: mc.OpReplaceQ, key: "zz", extras: setExt(0, 0), value: "x"}}},
		{"replace", []bp{{op: mc.OpReplace, key: "c", extras: setExt(4, 0), value: "yy"}, {op: mc.OpReplaceQ, key: "c", extras: setExt(5, 0), value: "zz"}, {op: mc.OpGet, key: "c"}}},
		{"cas right", []bp{{op: mc.OpGet, key: "a"}}},
		{"cas set", []bp{{op: mc.OpSet, key: "a", extras: setExt(0, 0), value: "new", cas: casLast}}},
		{"cas wrong", []bp{{op: mc.OpSet, key: "a", extras: setExt(0, 0), value: "bad", cas: casWrong}, {op: mc.OpGet, key: "a"}}},
		{"cas missing", []bp{{op: mc.OpSet, key: "nope", extras: setExt(0, 0), value: "x", cas: 12345}}},
		{"add with cas", []bp{{op: mc.OpGet, key: "a"}, {op: mc.OpAdd, key: "a", extras: setExt(0, 0), value: "add-cas", cas: casLast}, {op: mc.OpGet, key: "a"}}},
		{"append prepend", []bp{{op: mc.OpAppend, key: "a", value: "+end"}, {op: mc.OpPrepend, key: "a", value: "start+"}, {op: mc.OpAppendQ, key: "a", value: "!"}, {op: mc.OpPrependQ, key: "a", value: "^"}, {op: mc.OpGet, key: "a"}}},
		{"append missing", []bp{{op: mc.OpAppend, key: "zz", value: "x"}, {op: mc.OpPrependQ, key: "zz", value: "x"}}},
		{"append cas", []bp{{op: mc.OpGet, key: "a"}, {op: mc.OpAppend, key: "a", value: "1", cas: casWrong}, {op: mc.OpAppend, key: "a", value: "2", cas: casLast}, {op: mc.OpGet, key: "a"}}},
		{"delete", []bp{{op: mc.OpDelete, key: "b"}, {op: mc.OpDelete, key: "b"}, {op: mc.OpDeleteQ, key: "c"}, {op: mc.OpDeleteQ, key: "c"}}},
		{"delete cas", []bp{{op: mc.OpGet, key: "a"}, {op: mc.OpDelete, key: "a", cas: casWrong}, {op: mc.OpDelete, key: "a", cas: casLast}, {op: mc.OpGet, key: "a"}}},
		{"incr vivify", []bp{{op: mc.OpIncrement, key: "n", extras: incrExt(5, 10, 0)}, {op: mc.OpIncrement, key: "n", extras: incrExt(5, 10, 0)}, {op: mc.OpGet, key: "n"}}},
		{"decr floor", []bp{{op: mc.OpDecrement, key: "n", extras: incrExt(100, 0, 0)}, {op: mc.OpDecrementQ, key: "n", extras: incrExt(1, 0, 0)}, {op: mc.OpGet, key: "n"}}},
		{"incr no vivify", []bp{{op: mc.OpIncrement, key: "m", extras: incrExt(1, 0, 0xffffffff)}, {op: mc.OpDecrementQ, key: "m", extras: incrExt(1, 0, 0xffffffff)}}},
		{"incr quiet", []bp{{op: mc.OpIncrementQ, key: "n", extras: incrExt(7, 0, 0)}, {op: mc.OpIncrementQ, key: "q", extras: incrExt(7, 3, 0)}, {op: mc.OpGet, key: "n"}, {op: mc.OpGet, key: "q"}}},
		{"incr wraps", []bp{{op: mc.OpSet, key: "w", extras: setExt(0, 0), value: "18446744073709551615"}, {op: mc.OpIncrement, key: "w", extras: incrExt(2, 0, 0)}, {op: mc.OpGet, key: "w"}}},
		{"incr non-numeric", []bp{{op: mc.OpSet, key: "s", extras: setExt(0, 0), value: "abc"}, {op: mc.OpIncrement, key: "s", extras: incrExt(1, 0, 0)}, {op: mc.OpDecrementQ, key: "s", extras: incrExt(1, 0, 0)}}},
		{"incr cas", []bp{{op: mc.OpGet, key: "n"}, {op: mc.OpIncrement, key: "n", extras: incrExt(1, 0, 0), cas: casWrong}, {op: mc.OpIncrement, key: "n", extras: incrExt(1, 0, 0), cas: casLast}}},
		{"touch", []bp{{op: mc.OpTouch, key: "n", extras: expExt(100)}, {op: mc.OpTouch, key: "zz", extras: expExt(100)}}},
		{"gat", []bp{{op: mc.OpGAT, key: "n", extras: expExt(100)}, {op: mc.OpGATK, key: "n", extras: expExt(100)}, {op: mc.OpGATQ, key: "n", extras: expExt(0)}, {op: mc.OpGATKQ, key: "n", extras: expExt(0)}}},
		{"gat miss", []bp{{op: mc.OpGAT, key: "zz", extras: expExt(100)}, {op: mc.OpGATK, key: "zz", extras: expExt(100)}, {op: mc.OpGATQ, key: "zz", extras: expExt(0)}, {op: mc.OpGATKQ, key: "zz", extras: expExt(0)}}},
		{"expired by set", []bp{{op: mc.OpSet, key: "x", extras: setExt(0, 1000000000), value: "old"}, {op: mc.OpGet, key: "x"}}},
		{"expired by touch", []bp{{op: mc.OpSet, key: "x", extras: setExt(0, 0), value: "v"}, {op: mc.OpTouch, key: "x", extras: expExt(1000000000)}, {op: mc.OpGet, key: "x"}}},
		{"noop version", []bp{{op: mc.OpNoop}, {op: mc.OpVersion}}},
		{"stat missing", []bp{{op: mc.OpStat, key: "nosuch"}}},
		{"stat reset", []bp{{op: mc.OpStat, key: "reset"}}},
		{"verbosity unknown", []bp{{op: mc.OpVerbosity}, {op: mc.OpGet, key: "n"}}},
		// memcached swallows the body length again after the extras it
		// read: 4 bytes of whatever follows
		{"verbosity swallows", []bp{{op: mc.OpVerbosity, extras: expExt(1)}, {raw: []byte("junk")}, {op: mc.OpGet, key: "n"}}},
		{"unknown op", []bp{{op: 0x50, key: "", value: "abc"}, {op: mc.OpGet, key: "n"}}},
		{"sasl off", []bp{{op: mc.OpSASLListMechs}, {op: mc.OpSASLAuth, key: "PLAIN", value: "\x00u\x00p"}, {op: mc.OpGet, key: "n"}}},
		{"too large", []bp{{op: mc.OpSet, key: "n", extras: setExt(0, 0), value: big}, {op: mc.OpGet, key: "n"}}},
		{"too large add", []bp{{op: mc.OpSet, key: "t", extras: setExt(0, 0), value: "keep"}, {op: mc.OpAdd, key: "t", extras: setExt(0, 0), value: big}, {op: mc.OpAppendQ, key: "t", value: big}, {op: mc.OpGet, key: "t"}}},
		{"large value", []bp{{op: mc.OpSet, key: "L", extras: setExt(0, 0), value: big[:900<<10]}, {op: mc.OpGetK, key: "L"}}},
		{"pipeline", []bp{
			{op: mc.OpSetQ, key: "p1", extras: setExt(1, 0), value: "1"}, {op: mc.OpSetQ, key: "p2", extras: setExt(2, 0), value: "2"},
			{op: mc.OpGetKQ, key: "p1", opaque: 1}, {op: mc.OpGetKQ, key: "p0", opaque: 2}, {op: mc.OpGetKQ, key: "p2", opaque: 3},
			{op: mc.OpDeleteQ, key: "p1"}, {op: mc.OpGetK, key: "p1", opaque: 4}, {op: mc.OpNoop, opaque: 5},
		}},
		{"flush", []bp{{op: mc.OpFlushQ}, {op: mc.OpGet, key: "p2"}, {op: mc.OpSet, key: "f", extras: setExt(0, 0), value: "v"}, {op: mc.OpFlush}, {op: mc.OpGet, key: "f"}}},
		{"flush delayed", []bp{{op: mc.OpSet, key: "f", extras: setExt(0, 0), value: "v"}, {op: mc.OpFlush, extras: expExt(100)}, {op: mc.OpGet, key: "f"}}},
		// protocol errors: each closes the connection
		{"get with extras", []bp{{op: mc.OpGet, key: "a", extras: expExt(1)}, {op: mc.OpNoop}}},
		{"get without key", []bp{{op: mc.OpGet}}},
		{"set short extras", []bp{{op: mc.OpSet, key: "a", extras: expExt(1), value: "v"}}},
		{"incr short extras", []bp{{op: mc.OpIncrement, key: "a", extras: setExt(1, 1)}}},
		{"noop with body", []bp{{op: mc.OpNoop, value: "x"}}},
		{"version with key", []bp{{op: mc.OpVersion, key: "x"}}},
		{"flush bad extras", []bp{{op: mc.OpFlush, extras: []byte{1, 2}}}},
		{"key too long", []bp{{op: mc.OpGet, key: long}}},
		{"key past body", []bp{{raw: keyPastBody}}},
		{"touch no extras", []bp{{op: mc.OpTouch, key: "a"}}},
		{"quit", []bp{{op: mc.OpGet, key: "n"}, {op: mc.OpQuit}, {op: mc.OpGet, key: "n"}}},
		{"quitq", []bp{{op: mc.OpGet, key: "n"}, {op: mc.OpQuitQ}}},
		{"bad magic after binary", []bp{{op: mc.OpGet, key: "n"}, {raw: []byte("get n\r\n")}}},
		{"response magic", []bp{{op: mc.OpGet, key: "n"}, {raw: append([]byte{mc.BinaryResponse}, make([]byte, 23)...)}}},
	}
}

func TestBinaryDifferential(t *testing.T) {
	// Without its LRU maintainer: that thread holds items for moments,
	// and an incr or decr that finds another holder writes a new item
	// rather than padding the old one with spaces in place ("7" rather
	// than "7 "), so the oracle's bytes would depend on its timing (one
	// run in eight). Rebound pads, as memcached does undisturbed.
	oracle := testutil.StartMemcached(t, "-o", "no_lru_maintainer,no_lru_crawler")
	p := newBinPair(t, binHandler(t, oracleVersion(t, oracle)), oracle)
	for _, s := range binSteps() {
		p.same(t, s.name, s.step)
	}
}

// TestBinaryPipelineByteByByte feeds one pipeline a byte at a time: every
// split of a packet must be waited for, not misread.
func TestBinaryPipelineByteByByte(t *testing.T) {
	h := binHandler(t, "1.6.18")
	var in []byte
	steps := []bp{
		{op: mc.OpSet, key: "a", extras: setExt(7, 0), value: "value"},
		{op: mc.OpGetK, key: "a"}, {op: mc.OpGetQ, key: "zz"}, {op: mc.OpIncrement, key: "n", extras: incrExt(1, 5, 0)},
		{op: mc.OpAppend, key: "a", value: "+"}, {op: mc.OpGet, key: "a"}, {op: mc.OpNoop},
	}
	for _, s := range steps {
		in = append(in, s.bytes(0)...)
	}
	whole, _, _, _ := runAll(h.NewConn(), in, len(in))
	h2 := binHandler(t, "1.6.18")
	split, consumed, _, _ := runAll(h2.NewConn(), in, 1)
	if consumed != len(in) {
		t.Fatalf("consumed %d of %d", consumed, len(in))
	}
	norm := func(b []byte) []byte {
		p := &binPeer{casIDs: map[uint64]uint64{}}
		return p.number(t, b)
	}
	if !bytes.Equal(norm(whole), norm(split)) {
		t.Fatalf("byte by byte:\n% x\nwhole:\n% x", split, whole)
	}
	if n := bytes.Count(whole, []byte{mc.BinaryResponse}); n < 6 {
		t.Fatalf("only %d responses: % x", n, whole)
	}
}

// runAll hands in to c step bytes more at a time, as a transport would.
func runAll(c *mcserve.Conn, in []byte, step int) (out []byte, consumed int, need int, closed bool) {
	buf := []byte{}
	for i := 0; i < len(in); {
		j := min(len(in), i+step)
		buf = append(buf, in[i:j]...)
		i = j
		n, o, nd, cl := c.Serve(buf, out)
		out = o
		consumed += n
		buf = buf[n:]
		need, closed = nd, cl
		if cl {
			break
		}
	}
	return out, consumed, need, closed
}

func TestBinaryStat(t *testing.T) {
	h := binHandler(t, "1.6.18")
	for _, key := range []string{"", "settings", "items", "slabs", "reset"} {
		out, _, _, _ := runAll(h.NewConn(), packet(mc.OpStat, 5, 0, nil, key, ""), 1<<20)
		names := map[string]string{}
		var last mc.BinaryHeader
		for off := 0; off < len(out); {
			hh, ok := mc.ParseBinaryHeader(out[off:])
			if !ok || hh.Magic != mc.BinaryResponse || hh.Op != mc.OpStat || hh.Opaque != 5 || hh.Status != 0 {
				t.Fatalf("stat %q: bad response at %d: %+v", key, off, hh)
			}
			k := out[off+24 : off+24+int(hh.KeyLen)]
			v := out[off+24+int(hh.KeyLen) : off+hh.PacketLen()]
			names[string(k)] = string(v)
			off += hh.PacketLen()
			last = hh
		}
		if last.BodyLen != 0 || last.KeyLen != 0 {
			t.Fatalf("stat %q: not ended by an empty response: %+v", key, last)
		}
		switch key {
		case "":
			if names["version"] != "1.6.18" || names["cmd_get"] == "" || names["pid"] == "" {
				t.Fatalf("stat: %v", names)
			}
		case "settings":
			if names["maxconns"] == "" {
				t.Fatalf("stat settings: %v", names)
			}
		case "reset":
			if len(names) != 1 {
				t.Fatalf("stat reset: %v", names)
			}
		}
	}
}

// TestBinaryGetAllocs: a binary get hit allocates nothing.
func TestBinaryGetAllocs(t *testing.T) {
	h := binHandler(t, "1.6.18")
	c := h.NewConn()
	out, _, _, _ := runAll(c, packet(mc.OpSet, 1, 0, setExt(0, 0), "k", strings.Repeat("v", 100)), 1<<20)
	get := append(packet(mc.OpGetK, 1, 0, nil, "k", ""), packet(mc.OpGetQ, 1, 0, nil, "miss", "")...)
	out = make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		_, o, _, _ := c.Serve(get, out[:0])
		out = o
	}); n != 0 {
		t.Fatalf("binary get: %v allocs", n)
	}
	if len(out) != 24+4+1+100 {
		t.Fatalf("reply %d bytes", len(out))
	}
}

// FuzzBinaryServe: any bytes after the binary magic, in any split, are
// served without a panic, never consume more than given, and ask for more
// only when they consumed nothing more to do.
func FuzzBinaryServe(f *testing.F) {
	f.Add(packet(mc.OpSet, 1, 0, setExt(1, 0), "k", "v"), uint8(3))
	f.Add(append(packet(mc.OpGetKQ, 1, 0, nil, "k", ""), packet(mc.OpIncrement, 2, 0, incrExt(1, 2, 0), "n", "")...), uint8(1))
	f.Add(append(packet(mc.OpStat, 1, 0, nil, "settings", ""), packet(0x77, 0, 0, nil, "", "xyz")...), uint8(7))
	f.Add(packet(mc.OpSASLAuth, 1, 0, nil, "PLAIN", "\x00u\x00p"), uint8(2))
	h := binHandler(f, "1.6.18")
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		in = append([]byte{mc.BinaryRequest}, in...)
		c := h.NewConn()
		buf := []byte{}
		var out []byte
		for i := 0; i < len(in); {
			j := min(len(in), i+int(step)+1)
			buf = append(buf, in[i:j]...)
			i = j
			n, o, need, closed := c.Serve(buf, out[:0])
			out = o
			if n < 0 || n > len(buf) {
				t.Fatalf("consumed %d of %d", n, len(buf))
			}
			buf = buf[n:]
			if need > 0 && need <= len(buf) {
				t.Fatalf("need %d with %d buffered", need, len(buf))
			}
			if closed {
				return
			}
		}
	})
}
