package client_test

import (
	"net"
	"sync"
	"testing"

	"github.com/rebound-net/rebound/codec/rebound"
)

// kvServer is a fake Rebound server on a loopback UDP socket: a map for a
// store, every request counted by op, and a drop function that may
// swallow a reply after the request was carried out (a lost reply).
type kvServer struct {
	addr string

	mu   sync.Mutex
	kv   map[string][]byte
	seen map[rebound.Op]int
	n    int // requests so far
}

// startKV starts a kvServer; drop(n, op) is asked, for the n-th request
// (from 0), whether to withhold its reply.
func startKV(t testing.TB, drop func(n int, op rebound.Op) bool) *kvServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &kvServer{addr: pc.LocalAddr().String(), kv: map[string][]byte{}, seen: map[rebound.Op]int{}}
	go func() {
		buf := make([]byte, 65536)
		out := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := rebound.ParseDatagram(buf[:n])
			if req.Check == rebound.Drop {
				continue
			}
			h := rebound.Header{Op: req.Op, Flags: rebound.FlagResponse, Seq: req.Seq, Status: req.Status}
			var payload []byte
			s.mu.Lock()
			i := s.n
			s.n++
			s.seen[req.Op]++
			if req.Check == rebound.Valid {
				switch req.Op {
				case rebound.OpPing:
					payload = req.Payload
				case rebound.OpGet:
					key, _ := rebound.ParseGet(req.Payload)
					v, ok := s.kv[string(key)]
					if !ok {
						h.Status = rebound.StatusNotFound
					}
					payload = v
				case rebound.OpSet:
					key, _, v, _ := rebound.ParseSet(req.Payload)
					s.kv[string(key)] = append([]byte(nil), v...)
				case rebound.OpDel:
					key, _ := rebound.ParseDel(req.Payload)
					if _, ok := s.kv[string(key)]; !ok {
						h.Status = rebound.StatusNotFound
					}
					delete(s.kv, string(key))
				}
			}
			s.mu.Unlock()
			if drop != nil && drop(i, req.Op) {
				continue
			}
			h.Len = uint16(len(payload))
			rebound.PutHeader(out, h)
			m := rebound.HeaderLen + copy(out[rebound.HeaderLen:], payload)
			_, _ = pc.WriteTo(out[:m], from)
		}
	}()
	return s
}

// count returns how many requests with op arrived.
func (s *kvServer) count(op rebound.Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[op]
}

// total returns how many requests arrived.
func (s *kvServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *kvServer) put(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[key] = []byte(value)
}
