package store

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func benchKeys(n int) [][]byte {
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = fmt.Appendf(nil, "key-%027d", i) // 32 bytes
	}
	return ks
}

// BenchmarkMix is 90% Get, 10% Set of 32-byte keys and 64-byte values.
func BenchmarkMix(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		for _, par := range []bool{false, true} {
			name := fmt.Sprintf("keys%d/serial", n)
			if par {
				name = fmt.Sprintf("keys%d/parallel", n)
			}
			b.Run(name, func(b *testing.B) {
				s := New(Config{})
				ks := benchKeys(n)
				val := make([]byte, 64)
				for _, k := range ks {
					s.Set(k, val, ModeSet, 0, 0, 0)
				}
				var seed atomic.Int64
				loop := func(next func() bool) {
					dst := make([]byte, 0, 128)
					i := int(seed.Add(1)) * 1000003
					for next() {
						i++
						k := ks[(i*7919)%n]
						if i%10 == 0 {
							s.Set(k, val, ModeSet, 0, 0, 0)
						} else {
							s.Get(k, dst[:0])
						}
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if par {
					b.RunParallel(func(pb *testing.PB) { loop(pb.Next) })
				} else {
					loop(b.Loop)
				}
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s := New(Config{})
	key := []byte("key-0000000000000000000000000001")
	s.Set(key, make([]byte, 64), ModeSet, 0, 0, 0)
	dst := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		s.Get(key, dst[:0])
	}
}

func BenchmarkIncrParallel(b *testing.B) {
	s := New(Config{})
	s.Set([]byte("n"), []byte("0"), ModeSet, 0, 0, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Incr([]byte("n"), 1, false, nil)
		}
	})
}

func BenchmarkBigItem(b *testing.B) {
	s := New(Config{MemoryLimit: 64 << 20})
	big := make([]byte, 1<<20)
	key := []byte("big")
	dst := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	for b.Loop() {
		s.Set(key, big, ModeSet, 0, 0, 0)
		if _, _, ok := s.Get(key, dst[:0]); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetClock compares the default coarse clock with time.Now.
func BenchmarkGetClock(b *testing.B) {
	for _, c := range []struct {
		name string
		now  func() time.Time
	}{{"coarse", nil}, {"timeNow", time.Now}} {
		b.Run(c.name, func(b *testing.B) {
			s := New(Config{Now: c.now})
			key := []byte("key-0000000000000000000000000001")
			s.Set(key, make([]byte, 64), ModeSet, 0, 0, 0)
			dst := make([]byte, 0, 128)
			b.ReportAllocs()
			for b.Loop() {
				s.Get(key, dst[:0])
			}
		})
	}
}
