package bpf_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec/memcache"
	"github.com/rebound-net/rebound/userspace/mcserve"
	"github.com/rebound-net/rebound/userspace/store"
)

// metaServer is the userspace memcached handler over a store whose
// changes reach items, as in the server: the oracle for meta gets.
type metaServer struct {
	t *testing.T
	c *mcserve.Conn
}

func newMetaServer(t *testing.T, items *bpf.Items) *metaServer {
	st := store.New(store.Config{})
	st.SetMirror(items)
	return &metaServer{t: t, c: mcserve.New(mcserve.Config{Store: st}).NewConn()}
}

// do serves one request datagram (frame header and command) and returns
// the reply datagram userspace sends for it.
func (m *metaServer) do(id uint16, cmd string) []byte {
	m.t.Helper()
	out, ends, _, ok := m.c.ServeDatagram(mcDatagram(id, 0, 1, 0, cmd), nil)
	if !ok || len(ends) != 1 {
		m.t.Fatalf("userspace %q: ok %v, %d messages", cmd, ok, len(ends))
	}
	return append(memcache.AppendUDPHeader(nil, memcache.UDPHeader{RequestID: id, Total: 1}), out[:ends[0]]...)
}

// TestAnswerMetaGet: "mg <key>" with v and f, either or neither, is
// answered in XDP with the bytes the userspace handler sends, in every
// frame shape, for keys indexed both ways and values and flags of every
// width; every other meta get goes on to userspace.
func TestAnswerMetaGet(t *testing.T) {
	p, items := loadAnswers(t, 100)
	configure(t, items, true, 0, ansMTU)
	us := newMetaServer(t, items)
	keys := []string{"k", strings.Repeat("s", 47), strings.Repeat("l", 48), strings.Repeat("L", bpf.AnswerKeyMax)}
	sizes := []int{0, 1, 6, 101, 1024}
	flags := []uint32{0, 7, 4294967295}
	type item struct {
		key string
		n   int
	}
	var held []item
	for i, k := range keys {
		for j, n := range sizes {
			key := k[:len(k)-1] + string(rune('a'+j)) // same length, one per size
			set := fmt.Sprintf("set %s %d 0 %d\r\n%s\r\n", key, flags[(i+j)%len(flags)], n, value(n, byte(i*8+j)))
			if got := string(us.do(1, set)[8:]); got != "STORED\r\n" {
				t.Fatalf("%q: %q", set, got)
			}
			held = append(held, item{key, n})
		}
	}
	forms := []string{"", " v", " f", " v f", " f v"}
	for _, s := range shapes {
		for _, it := range held {
			for _, form := range forms {
				cmd := "mg " + it.key + form + "\r\n"
				name := fmt.Sprintf("%s mg %d-byte key%s, %d bytes", s.name, len(it.key), form, it.n)
				req := frame(t, s.pk, mcPort, mcDatagram(0x4242, 0, 1, 0, cmd))
				hit(t, p, name, req, bpf.AnswerMemcacheMetaGet, us.do(0x4242, cmd))
			}
		}
	}

	pass := func(name string, cmd string, op bpf.AnswerOp, outcome bpf.AnswerOutcome) {
		t.Helper()
		for _, s := range shapes {
			runAnswer(t, p, s.name+" "+name, frame(t, s.pk, mcPort, mcDatagram(1, 0, 1, 0, cmd)), xdpPass, bpf.PassNoSocket, op, outcome)
		}
	}
	k := held[0].key
	pass("mg miss", "mg nope v\r\n", bpf.AnswerMemcacheMetaGet, bpf.AnswerMiss)
	for _, cmd := range []string{"mg " + k + " v t\r\n", "mg " + k + " q v\r\n", "mg " + k + " v v\r\n", "mg " + k + "  v\r\n",
		"mg " + k + " b\r\n", "mg " + k + " V\r\n", "mg " + k + " O1 v\r\n", "mg " + k + " k v\r\n", "mg " + k + " v\n",
		"mg " + k + " v\r", "mg " + k + "\r\nmg " + k + "\r\n", "mg \r\n", "mg  " + k + " v\r\n", "mg " + k + " v \r\n",
		"MG " + k + " v\r\n", "mg " + strings.Repeat("x", 251) + " v\r\n", "ms " + k + " 1\r\n"} {
		pass(fmt.Sprintf("%q", cmd), cmd, noAnswer, 0)
	}
	// The amplification bound applies as to get.
	configure(t, items, true, ansAmp, ansMTU)
	big := held[3]
	pass("mg over the bound", "mg "+big.key+" v\r\n", bpf.AnswerMemcacheMetaGet, bpf.AnswerAmplification)
	if err := items.Err(); err != nil {
		t.Error(err)
	}
}
