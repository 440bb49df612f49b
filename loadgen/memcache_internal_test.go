package loadgen

import (
	"bytes"
	"testing"
	"time"

	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/codec/rebound"
)

func TestAppendKey(t *testing.T) {
	for _, c := range []struct {
		k, size int
		want    string
	}{{42, 12, "key:00000042"}, {0, 5, "key:0"}, {123, 16, "key:000000000123"}} {
		if got := string(appendKey([]byte("x"), c.k, c.size)); got != "x"+c.want {
			t.Errorf("appendKey(%d, %d) = %q, want %q", c.k, c.size, got, "x"+c.want)
		}
	}
}

func TestValidHit(t *testing.T) {
	key, value := []byte("key:01"), []byte("abcdef")
	good := "VALUE key:01 0 6\r\nabcdef\r\nEND\r\n"
	if !validHit([]byte(good), key, value) {
		t.Fatalf("%q refused", good)
	}
	if !validHit([]byte("VALUE key:01 4294967295 6\r\nabcdef\r\nEND\r\n"), key, value) {
		t.Fatal("flags refused")
	}
	for _, bad := range []string{
		"VALUE key:02 0 6\r\nabcdef\r\nEND\r\n",   // other key
		"VALUE key:012 0 6\r\nabcdef\r\nEND\r\n",  // longer key
		"VALUE key:01 0 5\r\nabcde\r\nEND\r\n",    // other length
		"VALUE key:01 0 6\r\nabcdeX\r\nEND\r\n",   // other bytes
		"VALUE key:01 0 6\r\nabcdef\r\n",          // no END
		"VALUE key:01 0 6\r\nabcdef\r\nEND\r\nX",  // trailing bytes
		"VALUE key:01 x 6\r\nabcdef\r\nEND\r\n",   // flags
		"VALUE key:01 0 6 7\r\nabcdef\r\nEND\r\n", // a cas we did not ask for
		"END\r\n", "SERVER_ERROR out of memory\r\n", "",
	} {
		if validHit([]byte(bad), key, value) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMCReplyLen(t *testing.T) {
	hit := "VALUE key:01 0 6\r\nabcdef\r\nEND\r\n"
	for in, want := range map[string]int{
		"STORED\r\nEND\r\n": 8, "END\r\n": 5, "STOR": 0,
		hit: len(hit), hit + "STORED\r\n": len(hit), hit[:len(hit)-1]: 0, "VALUE k 0 6 99\r\nabcdef\r\nEND\r\n": 29,
		"VALUE k 0 zz\r\n": 14, "VALUE k\r\n": 9,
	} {
		if got := mcReplyLen([]byte(in)); got != want {
			t.Errorf("mcReplyLen(%q) = %d, want %d", in, got, want)
		}
	}
}

// testFlow is a memcache flow with every slot's request encoded, for the
// reply checks.
func testFlow(t *testing.T, tcp bool, valueSize int) *flow {
	t.Helper()
	cfg := BenchConfig{Target: "x", Protocol: Memcache, TCP: tcp, Mix: []OpShare{{rebound.OpGet, 1}}, ValueSize: valueSize, Window: 4}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	f, err := newFlowState(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.measureFrom, f.end = time.Now(), time.Now().Add(time.Hour)
	return f
}

// A reply that spans datagrams counts once all of them are in, in any
// order; a wrong one is bad.
func TestMCDatagramReassembly(t *testing.T) {
	f := testFlow(t, false, 3000)
	buf := make([]byte, f.msgBytes())
	now := time.Now()
	seq := f.take(now, now, 0)
	n := f.encode(buf, seq)
	h, _ := memcache.ParseUDPHeader(buf[:n])
	if !bytes.HasPrefix(buf[memcache.UDPHeaderLen:n], []byte("get key:")) || h.Total != 1 || h.Seq != 0 || h.Reserved != 0 {
		t.Fatalf("request %q header %+v", buf[:n], h)
	}
	s := int(seq % uint32(len(f.slots)))
	key := appendKey(nil, int(f.mc.key[s]), f.cfg.KeySize)
	reply := memcache.AppendValue(nil, key, 0, f.mc.value, 0, false)
	reply = append(reply, memcache.ReplyEnd...)
	total := memcache.UDPDatagrams(len(reply))
	if total < 3 {
		t.Fatalf("%d datagrams", total)
	}
	for i := total - 1; i >= 0; i-- { // backwards
		if f.received.Load() != 0 {
			t.Fatalf("complete after %d of %d datagrams", total-1-i, total)
		}
		a, b := memcache.UDPChunk(len(reply), i)
		d := memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: h.RequestID, Seq: uint16(i), Total: uint16(total)})
		f.complete(append(d, reply[a:b]...))
	}
	if f.received.Load() != 1 || f.hits != 1 || f.bad.Load() != 0 {
		t.Fatalf("received %d hits %d bad %d", f.received.Load(), f.hits, f.bad.Load())
	}
	// A reply for a request id nobody sent is ignored; a wrong one is bad.
	seq = f.take(now, now, 0)
	n = f.encode(buf, seq)
	h, _ = memcache.ParseUDPHeader(buf[:n])
	f.complete(append(memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: h.RequestID + 1, Total: 1}), "END\r\n"...))
	if f.received.Load() != 1 {
		t.Fatal("a reply to another request id was taken")
	}
	f.complete(append(memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: h.RequestID, Total: 1}), "VALUE nope 0 1\r\nx\r\nEND\r\n"...))
	if f.received.Load() != 2 || f.bad.Load() != 1 {
		t.Fatalf("received %d bad %d", f.received.Load(), f.bad.Load())
	}
}

// The load loop's per-request work allocates nothing.
func TestMCNoAllocation(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		f := testFlow(t, tcp, 64)
		f.opTable = []rebound.Op{rebound.OpGet, rebound.OpSet}
		buf := make([]byte, f.msgBytes())
		reply := make([]byte, 0, 256)
		now := time.Now()
		allocs := testing.AllocsPerRun(1000, func() {
			seq := f.take(now, now, 0)
			f.encode(buf, seq)
			s := int(seq % uint32(len(f.slots)))
			reply = reply[:0]
			if f.mc.op[s] == rebound.OpSet {
				reply = append(reply, memcache.ReplyStored...)
			} else {
				reply = memcache.AppendValue(reply, appendKey(f.mc.keyBuf[:0], int(f.mc.key[s]), f.cfg.KeySize), 0, f.mc.value, 0, false)
				reply = append(reply, memcache.ReplyEnd...)
			}
			if tcp {
				f.mc.head, f.mc.fill = (f.mc.head+1)%len(f.mc.fifo), f.mc.fill-1
				f.checkMC(s, reply)
			} else {
				h, _ := memcache.ParseUDPHeader(buf)
				d := memcache.AppendUDPHeader(reply[len(reply):], h)
				f.complete(append(d, reply...))
			}
		})
		if allocs != 0 {
			t.Errorf("tcp=%v: %v allocations per request", tcp, allocs)
		}
		if f.bad.Load() != 0 || f.hits == 0 {
			t.Errorf("tcp=%v: bad %d hits %d", tcp, f.bad.Load(), f.hits)
		}
	}
}
