package store

import "testing"

// TestStaleAndWon: md I leaves the value readable, stale, with a new CAS;
// one Claim wins it and the next finds it won; ms I with an older CAS
// keeps it stale and won; a plain set makes it fresh. A stale or won item
// is taken out of the mirror (the XDP copy, which cannot say X, W or Z)
// and a fresh one put back.
func TestStaleAndWon(t *testing.T) {
	s := New(Config{})
	m := newFakeMirror()
	if err := s.SetMirror(m); err != nil {
		t.Fatal(err)
	}
	k := []byte("k")
	_, cas1 := s.Set(k, []byte("v1"), ModeSet, 0, 0, 0)
	if _, ok := m.items["k"]; !ok {
		t.Fatal("a fresh item is not mirrored")
	}
	if r := s.Invalidate(k, cas1+1, nil); r != Exists {
		t.Fatalf("Invalidate with a wrong CAS: %v", r)
	}
	if r := s.Invalidate(k, 0, nil); r != Deleted {
		t.Fatalf("Invalidate: %v", r)
	}
	v, meta, ok := s.Get(k, nil)
	if !ok || string(v) != "v1" || !meta.Stale || meta.Won || meta.CAS == cas1 {
		t.Fatalf("after md I: %q %+v %v, want v1, stale, not won, a new CAS", v, meta, ok)
	}
	if _, ok := m.items["k"]; ok {
		t.Fatal("a stale item is still mirrored")
	}
	if won, already := s.Claim(k, meta.CAS, 0); !won || already {
		t.Fatalf("first Claim: won %v already %v", won, already)
	}
	if won, already := s.Claim(k, meta.CAS, 0); won || !already {
		t.Fatalf("second Claim: won %v already %v", won, already)
	}
	// ms I with an older CAS: stored, still stale, still won.
	if r, _ := s.SetMeta(k, []byte("v2"), ModeSet, 0, 0, cas1, SetOptions{Invalidate: true}); r != Stored {
		t.Fatalf("ms I with an older CAS: %v", r)
	}
	v, meta, _ = s.Get(k, nil)
	if string(v) != "v2" || !meta.Stale || !meta.Won {
		t.Fatalf("after ms I: %q %+v", v, meta)
	}
	// Without I, an older CAS fails.
	if r, _ := s.Set(k, []byte("v3"), ModeSet, 0, 0, cas1); r != Exists {
		t.Fatalf("cas with an older CAS: %v", r)
	}
	// A plain set: fresh, mirrored again.
	s.Set(k, []byte("v4"), ModeSet, 0, 0, 0)
	if _, meta, _ = s.Get(k, nil); meta.Stale || meta.Won {
		t.Fatalf("after a set: %+v", meta)
	}
	if it, ok := m.items["k"]; !ok || it.value != "v4" {
		t.Fatalf("a fresh item is not mirrored again: %+v %v", it, ok)
	}
	// R: an item that expires before the recache time is won once.
	now := s.Now().Unix()
	_, cas := s.Set([]byte("r"), []byte("x"), ModeSet, 0, now+10, 0)
	if won, _ := s.Claim([]byte("r"), cas, now+5); won {
		t.Fatal("won the recache of an item that outlives the recache time")
	}
	if won, _ := s.Claim([]byte("r"), cas, now+30); !won {
		t.Fatal("did not win the recache of an item about to expire")
	}
	// A key sent in base64 is remembered.
	s.SetMeta([]byte("b"), []byte("x"), ModeSet, 0, 0, 0, SetOptions{KeyBinary: true})
	if _, meta, _ = s.Get([]byte("b"), nil); !meta.KeyBinary {
		t.Fatal("KeyBinary not kept")
	}
}

// TestLockFreeReadsOnlyOnX86: reads skip the key's lock only where loads
// are not reordered with later loads; on arm64 and ppc64le every read
// locks (TestLockedRead proves that path).
func TestLockFreeReadsOnlyOnX86(t *testing.T) {
	for arch, want := range map[string]int{"amd64": 4, "386": 4, "arm64": 0, "ppc64le": 0, "riscv64": 0, "s390x": 0} {
		if got := lockFreeReadTries(arch); got != want {
			t.Errorf("%s: %d tries without a lock, want %d", arch, got, want)
		}
	}
}
