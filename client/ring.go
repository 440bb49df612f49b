package client

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
)

// Ring picks a server for each key with ketama consistent hashing, the
// key → server mapping of libmemcached's weighted ketama and of
// twemproxy's "distribution: ketama" with "hash: md5", every server of
// weight 1:
//
//   - A server's name on the ring is its address as given, "host:port",
//     except that a port of 11211 (memcached's default) is left out:
//     "10.0.0.1:11211" is "10.0.0.1", "10.0.0.1:22122" stays.
//   - Each server has 160 points, in 40 groups: group i is the MD5 digest
//     of "name-i" (i from 0), whose four 4-byte words, read little-endian,
//     are four points. (The count is libmemcached's float arithmetic,
//     floor(1/n·40·n)·4, which is 156, not 160, for a few server counts
//     such as 25; Ring computes it the same way.)
//   - A key hashes to the first 4 bytes of its MD5 digest, little-endian,
//     and belongs to the server of the first point at or after that
//     value, wrapping to the lowest point.
//
// Two points of the same value (rare: 32-bit values) are ordered by the
// servers' order in the list; libmemcached leaves that to qsort.
//
// Adding a server to n moves about 1/(n+1) of the keys, all to it. A Ring
// is immutable and safe for concurrent use.
type Ring struct {
	servers []string
	points  []ringPoint // by value
}

type ringPoint struct {
	value  uint32
	server int
}

// NewRing returns the ring of servers, each "host:port". It is an error to
// give none, one that is not host:port, or the same one twice.
func NewRing(servers []string) (*Ring, error) {
	if len(servers) == 0 {
		return nil, errors.New("client: a ring needs at least one server")
	}
	r := &Ring{servers: slices.Clone(servers)}
	seen := map[string]bool{}
	n := len(servers)
	// libmemcached and twemproxy compute a server's share in float (single
	// precision) arithmetic; doing the same keeps their point counts.
	pct := float32(1) / float32(n)
	perServer := int(math.Floor(float64(pct*160/4*float32(n))+0.0000000001)) * 4
	for i, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("client: ring server %q: %w", s, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
			return nil, fmt.Errorf("client: ring server %q is not host:port", s)
		}
		if seen[s] {
			return nil, fmt.Errorf("client: ring server %q given twice", s)
		}
		seen[s] = true
		name := s
		if port == "11211" {
			name = host
		}
		for g := range perServer / 4 {
			d := md5.Sum([]byte(name + "-" + strconv.Itoa(g)))
			for w := range 4 {
				r.points = append(r.points, ringPoint{value: binary.LittleEndian.Uint32(d[4*w:]), server: i})
			}
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		if a.value != b.value {
			if a.value < b.value {
				return -1
			}
			return 1
		}
		return a.server - b.server
	})
	return r, nil
}

// Servers returns the ring's servers, in the order given.
func (r *Ring) Servers() []string { return slices.Clone(r.servers) }

// Pick returns the server that owns key.
func (r *Ring) Pick(key []byte) string { return r.servers[r.PickIndex(key)] }

// PickIndex returns the index, in Servers, of the server that owns key.
func (r *Ring) PickIndex(key []byte) int {
	d := md5.Sum(key)
	h := binary.LittleEndian.Uint32(d[:4])
	i, _ := slices.BinarySearchFunc(r.points, h, func(p ringPoint, h uint32) int {
		if p.value < h {
			return -1
		}
		if p.value > h {
			return 1
		}
		return 0
	})
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].server
}
