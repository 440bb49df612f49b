package userspace

import (
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/userspace/store"
)

// DefaultKVMemory is the default memory bound of the kv store.
const DefaultKVMemory = store.DefaultMemoryLimit

// Service is the built-in handler: PING echoes its payload, GET, SET and
// DEL work on a store.Store (memory bound, eviction, TTLs; a GET copies the
// value once, from the store straight into the reply). The store may be
// shared with the memcached protocol: a key set over one is read over the
// other. A Rebound SET stores the item with memcached flags 0 (it replaces
// the whole item, flags included); a Rebound GET returns the value only.
type Service struct {
	store    *store.Store
	maxValue int
}

// ServiceConfig configures the built-in service.
type ServiceConfig struct {
	// Store is the store to serve; nil makes one of KVMemory bytes.
	Store *store.Store
	// KVMemory bounds the memory of stored keys and values (default 256
	// MiB). Ignored when Store is set.
	KVMemory int
	// MaxValue is the largest value a SET may store (default, and at most:
	// the store's MaxItemSize, at most 65535, the largest payload).
	MaxValue int
}

// NewService returns the built-in service.
func NewService(cfg ServiceConfig) *Service {
	st := cfg.Store
	if st == nil {
		if cfg.KVMemory <= 0 {
			cfg.KVMemory = DefaultKVMemory
		}
		st = store.New(store.Config{MemoryLimit: int64(cfg.KVMemory)})
	}
	limit := min(st.MaxItemSize(), rebound.MaxPayload)
	if cfg.MaxValue <= 0 || cfg.MaxValue > limit {
		cfg.MaxValue = limit
	}
	return &Service{store: st, maxValue: cfg.MaxValue}
}

// MaxValue is the largest value SET accepts.
func (s *Service) MaxValue() int { return s.maxValue }

// Store is the store the service serves.
func (s *Service) Store() *store.Store { return s.store }

// Serve answers a batch.
func (s *Service) Serve(batch []Message) {
	var now int64 // read once per batch, only if a SET has a TTL
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
			n, _, found := s.store.GetInto(key, m.Out[:cap(m.Out)])
			switch {
			case !found:
				m.Status = rebound.StatusNotFound
			case n > cap(m.Out):
				m.Truncated = true
			default:
				m.Out = m.Out[:n]
			}
		case rebound.OpSet:
			key, ttl, value, ok := rebound.ParseSet(m.Payload)
			switch {
			case !ok:
				m.Status = rebound.StatusBadRequest
			case len(value) > s.maxValue:
				m.Status = rebound.StatusTooLarge
			default:
				var exptime int64
				if ttl != 0 {
					if now == 0 {
						now = s.store.Now().Unix()
					}
					exptime = now + int64(ttl)
				}
				if r, _ := s.store.Set(key, value, store.ModeSet, 0, exptime, 0); r == store.TooLarge {
					m.Status = rebound.StatusTooLarge
				}
			}
		case rebound.OpDel:
			key, ok := rebound.ParseDel(m.Payload)
			if !ok {
				m.Status = rebound.StatusBadRequest
			} else if s.store.Delete(key, 0) != store.Deleted {
				m.Status = rebound.StatusNotFound
			}
		default:
			m.Status = rebound.StatusUnknownOp
		}
	}
}

// StoreStats are the kv store's gauges and counters.
type StoreStats struct {
	Items     int64
	Bytes     int64
	Evictions int64
	Expired   int64
}

// StoreStats reads the store's counters.
func (s *Service) StoreStats() StoreStats {
	st := s.store.Stats()
	return StoreStats{Items: st.Items, Bytes: st.Bytes, Evictions: st.Evictions, Expired: st.Expired}
}
