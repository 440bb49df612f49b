package userspace

import (
	"errors"
	"sync"

	"github.com/coocood/freecache"

	"github.com/rebound-net/rebound/codec/rebound"
)

// DefaultKVMemory is the default memory bound of the kv store.
const DefaultKVMemory = 256 << 20

// Service is the built-in handler: PING echoes its payload, GET, SET and
// DEL work on an in-memory cache with a memory bound, LRU-like eviction and
// TTLs (coocood/freecache: a GET copies the value once, from the cache
// straight into the reply).
type Service struct {
	store    *freecache.Cache
	maxValue int
	getters  sync.Pool // *getter, one per concurrent batch
}

// ServiceConfig configures the built-in service.
type ServiceConfig struct {
	// KVMemory bounds the memory of stored keys and values (default 256 MiB).
	KVMemory int
	// MaxValue is the largest value a SET may store (default: the largest
	// the store can hold, 1/1024 of KVMemory, at most 65535).
	MaxValue int
}

// NewService returns the built-in service.
func NewService(cfg ServiceConfig) *Service {
	if cfg.KVMemory <= 0 {
		cfg.KVMemory = DefaultKVMemory
	}
	storeMax := cfg.KVMemory/1024 - 64 // freecache: an entry takes at most 1/1024 of the cache
	if cfg.MaxValue <= 0 || cfg.MaxValue > storeMax {
		cfg.MaxValue = min(storeMax, rebound.MaxPayload)
	}
	s := &Service{store: freecache.NewCache(cfg.KVMemory), maxValue: cfg.MaxValue}
	s.getters.New = func() any {
		g := &getter{}
		g.fn = g.copyValue // bound once: GetFn then allocates nothing
		return g
	}
	return s
}

// MaxValue is the largest value SET accepts.
func (s *Service) MaxValue() int { return s.maxValue }

// getter copies a value found by GetFn into a reply.
type getter struct {
	m  *Message
	fn func([]byte) error
}

func (g *getter) copyValue(v []byte) error {
	if len(v) > cap(g.m.Out) {
		g.m.Truncated = true
		return nil
	}
	g.m.Out = g.m.Out[:len(v)]
	copy(g.m.Out, v)
	return nil
}

// Serve answers a batch.
func (s *Service) Serve(batch []Message) {
	g := s.getters.Get().(*getter)
	for i := range batch {
		m := &batch[i]
		switch m.Op {
		case rebound.OpPing:
			if len(m.Payload) > cap(m.Out) {
				m.Truncated = true
				continue
			}
			m.Out = m.Out[:len(m.Payload)]
			copy(m.Out, m.Payload) // a no-op when in place
		case rebound.OpGet:
			key, ok := rebound.ParseGet(m.Payload)
			if !ok {
				m.Status = rebound.StatusBadRequest
				continue
			}
			g.m = m
			if err := s.store.GetFn(key, g.fn); err != nil {
				m.Status = rebound.StatusNotFound
			}
		case rebound.OpSet:
			key, ttl, value, ok := rebound.ParseSet(m.Payload)
			switch {
			case !ok:
				m.Status = rebound.StatusBadRequest
			case len(value) > s.maxValue:
				m.Status = rebound.StatusTooLarge
			default:
				if err := s.store.Set(key, value, ttlSeconds(ttl)); err != nil {
					if errors.Is(err, freecache.ErrLargeEntry) {
						m.Status = rebound.StatusTooLarge
					} else {
						m.Status = rebound.StatusBadRequest
					}
				}
			}
		case rebound.OpDel:
			key, ok := rebound.ParseDel(m.Payload)
			if !ok {
				m.Status = rebound.StatusBadRequest
			} else if !s.store.Del(key) {
				m.Status = rebound.StatusNotFound
			}
		default:
			m.Status = rebound.StatusUnknownOp
		}
	}
	g.m = nil
	s.getters.Put(g)
}

// ttlSeconds maps the protocol's u32 TTL to freecache's int, where values
// above ~68 years would overflow its u32 expiry clock: cap them.
func ttlSeconds(ttl uint32) int {
	const maxTTL = 1 << 30
	return int(min(ttl, maxTTL))
}

// StoreStats are the kv store's gauges and counters.
type StoreStats struct {
	Items     int64
	Evictions int64
	Expired   int64
}

// StoreStats reads the store's counters.
func (s *Service) StoreStats() StoreStats {
	return StoreStats{Items: s.store.EntryCount(), Evictions: s.store.EvacuateCount(), Expired: s.store.ExpiredCount()}
}
