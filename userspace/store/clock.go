package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseTick is the resolution of the default clock; coarseIdle is how
// long it ticks on with nobody reading it before it stops.
const (
	coarseTick = 10 * time.Millisecond
	coarseIdle = 100 // ticks: one second
)

// coarse is the default clock of every Store in the process: time.Now read
// once per coarseTick by one goroutine. time.Now costs more than the rest
// of a Get on some virtual machines (~160 ns where this was measured), and
// the store only needs seconds (memcached's own clock ticks once a
// second). The goroutine stops after a second without a reader, so an
// idle server does not wake up a hundred times a second; the next read
// reads time.Now itself and starts it again.
var coarse struct {
	mu   sync.Mutex
	live atomic.Bool  // the ticking goroutine runs
	read atomic.Bool  // read since the last tick
	ns   atomic.Int64 // the time, as of the last tick
}

func coarseNow() time.Time {
	if !coarse.read.Load() {
		coarse.read.Store(true) // written only once a tick: the line stays shared
	}
	if coarse.live.Load() {
		return time.Unix(0, coarse.ns.Load())
	}
	return startCoarse()
}

// startCoarse reads the time now and starts the ticking goroutine.
func startCoarse() time.Time {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	now := time.Now()
	if coarse.live.Load() {
		return time.Unix(0, coarse.ns.Load())
	}
	coarse.ns.Store(now.UnixNano())
	coarse.live.Store(true)
	go func() {
		t := time.NewTicker(coarseTick)
		defer t.Stop()
		idle := 0
		for now := range t.C {
			coarse.ns.Store(now.UnixNano())
			if coarse.read.Swap(false) {
				idle = 0
			} else if idle++; idle >= coarseIdle {
				coarse.mu.Lock()
				if !coarse.read.Load() {
					coarse.live.Store(false)
					coarse.mu.Unlock()
					return
				}
				coarse.mu.Unlock()
				idle = 0
			}
		}
	}()
	return now
}
