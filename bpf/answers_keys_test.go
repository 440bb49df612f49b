package bpf_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/bpf"
	"github.com/rebound-net/rebound/codec/rebound"
)

// TestAnswerKeyLengths: keys of every length from 1 to 250 bytes, each
// with a value of a length from 0 to 40 (every tail the program writes a
// word at a time), are answered for Rebound GET, memcached get and meta
// get with the bytes userspace sends; keys that differ from a held one
// only in their last byte, their first byte or their length are misses.
// The program reads keys a word at a time, its last partial word from
// the bytes that end with the key, and compares them with the slot's.
// Items then move between small and large slots as their values change.
func TestAnswerKeyLengths(t *testing.T) {
	p, items := loadAnswers(t, 2*bpf.AnswerKeyMax)
	configure(t, items, true, 0, ansMTU)
	us := newMetaServer(t, items)
	keyOf := func(n int, last byte) string {
		b := []byte(strings.Repeat("0123456789abcdef", 16)[:n])
		b[n-1] = last
		return string(b)
	}
	for n := 1; n <= bpf.AnswerKeyMax; n++ {
		v := value(n%41, byte(n))
		set := fmt.Sprintf("set %s %d 0 %d\r\n%s\r\n", keyOf(n, 'K'), n*7, len(v), v)
		if got := string(us.do(1, set)[8:]); got != "STORED\r\n" {
			t.Fatalf("%q: %q", set, got)
		}
	}
	if st := items.Stats(); st.Items != bpf.AnswerKeyMax || st.NoRoom != 0 {
		t.Fatalf("items after the sets: %+v", st)
	}
	for n := 1; n <= bpf.AnswerKeyMax; n++ {
		key := keyOf(n, 'K')
		v := value(n%41, byte(n))
		for _, s := range shapes[:2] {
			name := fmt.Sprintf("%s %d-byte key", s.name, n)
			hit(t, p, name+" get", frame(t, s.pk, 7000, getReq(uint32(n), key, 0)), bpf.AnswerGet,
				reboundReply(rebound.OpGet, uint32(n), v))
			cmd := "get " + key + "\r\n"
			hit(t, p, name+" memcached get", frame(t, s.pk, mcPort, mcDatagram(7, 0, 1, 0, cmd)), bpf.AnswerMemcacheGet, us.do(7, cmd))
			cmd = "mg " + key + " f v\r\n"
			hit(t, p, name+" mg", frame(t, s.pk, mcPort, mcDatagram(8, 0, 1, 0, cmd)), bpf.AnswerMemcacheMetaGet, us.do(8, cmd))
		}
		others := []string{keyOf(n, 'J'), "X" + key[1:], key + "K"}
		if n > 1 {
			others = append(others, key[:n-1])
		}
		for _, other := range others {
			if len(other) > bpf.AnswerKeyMax {
				continue
			}
			name := fmt.Sprintf("%d-byte key, asked as %q", n, other)
			runAnswer(t, p, name+" get", frame(t, shapes[0].pk, 7000, getReq(1, other, 0)), xdpPass, bpf.PassNoSocket, bpf.AnswerGet, bpf.AnswerMiss)
			runAnswer(t, p, name+" memcached get", frame(t, shapes[0].pk, mcPort, mcDatagram(1, 0, 1, 0, "get "+other+"\r\n")),
				xdpPass, bpf.PassNoSocket, bpf.AnswerMemcacheGet, bpf.AnswerMiss)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// Values that move an item between the slot sizes (a reply of up to
	// 192 bytes fits a small slot), and back.
	for _, n := range []int{1, 8, 9, 100, 150, 186, 250} {
		key := keyOf(n, 'K')
		for _, vlen := range []int{500, 3, 1024, 0, 192 - 6 - n - 12 - 7} {
			if vlen < 0 {
				continue
			}
			v := value(vlen, byte(vlen))
			set := fmt.Sprintf("set %s 5 0 %d\r\n%s\r\n", key, len(v), v)
			if got := string(us.do(1, set)[8:]); got != "STORED\r\n" {
				t.Fatalf("%q: %q", set, got)
			}
			name := fmt.Sprintf("%d-byte key, now %d bytes", n, vlen)
			hit(t, p, name+" get", frame(t, shapes[0].pk, 7000, getReq(3, key, 0)), bpf.AnswerGet, reboundReply(rebound.OpGet, 3, v))
			cmd := "get " + key + "\r\n"
			hit(t, p, name+" memcached get", frame(t, shapes[0].pk, mcPort, mcDatagram(7, 0, 1, 0, cmd)), bpf.AnswerMemcacheGet, us.do(7, cmd))
		}
	}
	if st := items.Stats(); st.Items != bpf.AnswerKeyMax || st.NoRoom != 0 {
		t.Errorf("items after the moves: %+v", st)
	}
	if err := items.Err(); err != nil {
		t.Error(err)
	}
}
