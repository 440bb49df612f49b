package client

import (
	"context"
	"errors"
	"time"
)

// Cluster is a Rebound client of several servers: each key's calls go to
// the server its Ring picks, so a UDP GET goes straight to the server that
// holds the key. It is safe for concurrent use.
type Cluster struct {
	ring    *Ring
	clients []*Client // by ring index
}

// DialCluster dials every server (see Dial; opts apply to each) and
// returns a cluster that routes keys with NewRing(servers).
func DialCluster(ctx context.Context, servers []string, opts Options) (*Cluster, error) {
	r, err := NewRing(servers)
	if err != nil {
		return nil, err
	}
	cl := &Cluster{ring: r}
	for _, s := range servers {
		c, err := Dial(ctx, s, opts)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.clients = append(cl.clients, c)
	}
	return cl, nil
}

// Ring returns the cluster's ring.
func (cl *Cluster) Ring() *Ring { return cl.ring }

// For returns the client of the server that owns key.
func (cl *Cluster) For(key []byte) *Client { return cl.clients[cl.ring.PickIndex(key)] }

// Get is Client.Get on the server that owns key.
func (cl *Cluster) Get(ctx context.Context, key []byte) ([]byte, error) {
	return cl.For(key).Get(ctx, key)
}

// Set is Client.Set on the server that owns key.
func (cl *Cluster) Set(ctx context.Context, key, value []byte, ttl time.Duration) error {
	return cl.For(key).Set(ctx, key, value, ttl)
}

// Del is Client.Del on the server that owns key.
func (cl *Cluster) Del(ctx context.Context, key []byte) error {
	return cl.For(key).Del(ctx, key)
}

// Close closes every server's client.
func (cl *Cluster) Close() error {
	var errs []error
	for _, c := range cl.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// MemcacheCluster is a memcached client of several servers, keys routed
// by a Ring as twemproxy and libmemcached route them with ketama and md5:
// a UDP get goes straight to the server that holds the key. It is safe for
// concurrent use; calls to different servers run in parallel.
type MemcacheCluster struct {
	ring    *Ring
	clients []*Memcache // by ring index
}

// DialMemcacheCluster dials every server (see DialMemcache; opts apply to
// each) and returns a cluster that routes keys with NewRing(servers).
func DialMemcacheCluster(ctx context.Context, servers []string, opts MemcacheOptions) (*MemcacheCluster, error) {
	r, err := NewRing(servers)
	if err != nil {
		return nil, err
	}
	cl := &MemcacheCluster{ring: r}
	for _, s := range servers {
		m, err := DialMemcache(ctx, s, opts)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.clients = append(cl.clients, m)
	}
	return cl, nil
}

// Ring returns the cluster's ring.
func (cl *MemcacheCluster) Ring() *Ring { return cl.ring }

// For returns the client of the server that owns key.
func (cl *MemcacheCluster) For(key []byte) *Memcache { return cl.clients[cl.ring.PickIndex(key)] }

// Get is Memcache.Get on the server that owns key.
func (cl *MemcacheCluster) Get(ctx context.Context, key []byte) (Item, error) {
	return cl.For(key).Get(ctx, key)
}

// Set is Memcache.Set on the server that owns key.
func (cl *MemcacheCluster) Set(ctx context.Context, key, value []byte, flags uint32, ttl time.Duration) error {
	return cl.For(key).Set(ctx, key, value, flags, ttl)
}

// Delete is Memcache.Delete on the server that owns key.
func (cl *MemcacheCluster) Delete(ctx context.Context, key []byte) error {
	return cl.For(key).Delete(ctx, key)
}

// Close closes every server's client.
func (cl *MemcacheCluster) Close() error {
	var errs []error
	for _, m := range cl.clients {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}
