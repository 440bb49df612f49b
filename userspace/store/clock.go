package store

import (
	"sync"
	"sync/atomic"
	"time"
)

// coarseTick is the resolution of the default clock.
const coarseTick = 10 * time.Millisecond

// coarse is the default clock of every Store in the process: a time.Now
// read once per coarseTick by one goroutine that runs until the process
// exits. time.Now costs more than the rest of a Get on some virtual
// machines (~160 ns where this was measured), and the store only needs
// seconds (memcached's own clock ticks once a second).
var coarse struct {
	once sync.Once
	ns   atomic.Int64
}

func coarseNow() time.Time {
	coarse.once.Do(func() {
		coarse.ns.Store(time.Now().UnixNano())
		go func() {
			for t := range time.Tick(coarseTick) {
				coarse.ns.Store(t.UnixNano())
			}
		}()
	})
	return time.Unix(0, coarse.ns.Load())
}
