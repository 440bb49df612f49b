package bpf

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testenv"
)

// hashOf is keyHash of key as Put computes it.
func hashOf(it *Items, key string) uint64 { return keyHash(it.seed, key) }

// TestItemsBucketLimits: a key whose bucket already holds eight keys, or
// an entry with its tag, is not held (NoRoom), while slots are free; once
// the bucket has room, it is. The program could not answer a ninth key or
// tell two keys of one tag apart.
func TestItemsBucketLimits(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "privileged test: needs root (BPF)")
	}
	p, err := Load(Options{Ports: []uint16{7000}, AnswerItems: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	it := p.Items()
	if it.nbuckets != 64 {
		t.Fatalf("%d buckets for 64 items, want 64", it.nbuckets)
	}
	var same []string
	for i := 0; len(same) < bucketWays+1 && i < 1_000_000; i++ {
		k := fmt.Sprintf("key-%d", i)
		if hashOf(it, k)&(it.nbuckets-1) == 5 {
			same = append(same, k)
		}
	}
	if len(same) < bucketWays+1 {
		t.Fatal("no nine keys of one bucket")
	}
	now := time.Now().UnixNano()
	for _, k := range same {
		it.Put(k, []byte("v"), 0, 1, 0, now)
	}
	if st := it.Stats(); st.Items != bucketWays || st.NoRoom != 1 {
		t.Fatalf("nine keys in one bucket: %+v, want %d held and one not", st, bucketWays)
	}
	it.Delete(same[0])
	it.Put(same[bucketWays], []byte("v"), 0, 1, 0, now)
	if st := it.Stats(); st.Items != bucketWays || st.NoRoom != 1 {
		t.Fatalf("after a delete: %+v, want %d held", st, bucketWays)
	}
	if _, ok := it.slotOf[same[bucketWays]]; !ok {
		t.Fatal("the ninth key is not held once its bucket has room")
	}

	// An entry with another key's tag in its bucket (as if a key of the
	// same 64-bit hash but for the slot bits were held): that key is not
	// held.
	k, h := "", uint64(0)
	for i := 0; k == "" || h&(it.nbuckets-1) == 5; i++ { // not the full bucket
		k = fmt.Sprintf("tagged-%d", i)
		h = hashOf(it, k)
	}
	e := uint32(h&(it.nbuckets-1))*bucketWays + bucketWays - 1
	if atomic.LoadUint64(it.bucketEntry(e)) != 0 {
		t.Fatal("the bucket's last entry is in use")
	}
	atomic.StoreUint64(it.bucketEntry(e), tagOf(h)|63)
	it.Put(k, []byte("v"), 0, 1, 0, now)
	if _, ok := it.slotOf[k]; ok || it.Stats().NoRoom != 2 {
		t.Fatalf("a key whose tag is in its bucket is held: %+v", it.Stats())
	}
	atomic.StoreUint64(it.bucketEntry(e), 0)
	it.Put(k, []byte("v"), 0, 1, 0, now)
	if _, ok := it.slotOf[k]; !ok {
		t.Fatal("the key is not held once its bucket has no entry of its tag")
	}
}
