package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rebound-net/rebound/internal/testutil"
)

// Request k is due at start + k/rate, request 0 at the start itself, and
// dueBy counts exactly the requests due by a time, whatever the rounding.
func TestScheduleDue(t *testing.T) {
	start := time.Now()
	for _, rate := range []float64{1, 3, 1000, 7919.5, 50000, 333333, 1e6} {
		s := newSchedule(start, rate)
		if !s.due(0).Equal(start) {
			t.Fatalf("rate %v: request 0 due at %v, not at the start", rate, s.due(0).Sub(start))
		}
		if n := s.dueBy(start.Add(-time.Nanosecond)); n != 0 {
			t.Fatalf("rate %v: %d due before the start", rate, n)
		}
		for _, k := range []uint64{0, 1, 2, 3, 10, 999, 1000, 1001, 123457, 9999999} {
			d := s.due(k)
			if got := s.dueBy(d); got != k+1 {
				t.Fatalf("rate %v: dueBy(due(%d)) = %d, want %d", rate, k, got, k+1)
			}
			if d.After(s.due(k - min(k, 1))) {
				if got := s.dueBy(d.Add(-time.Nanosecond)); got != k {
					t.Fatalf("rate %v: dueBy(due(%d)-1ns) = %d, want %d", rate, k, got, k)
				}
			}
			if want := time.Duration(float64(k) / rate * 1e9); d.Sub(start)-want > time.Microsecond || want-d.Sub(start) > time.Microsecond {
				t.Fatalf("rate %v: request %d due at %v, want %v", rate, k, d.Sub(start), want)
			}
		}
	}
}

// A flow wakes for each request when they are further apart than the
// pace, and for several together, no sooner than the pace after the last
// one was due, when they are closer.
func TestNextWake(t *testing.T) {
	start := time.Now()
	us := func(n int) time.Time { return start.Add(time.Duration(n) * time.Microsecond) }
	slow := newSchedule(start, 5000) // every 200 µs
	for k, want := range []time.Time{us(0), us(200), us(400), us(600)} {
		if got := slow.nextWake(uint64(k), 50*time.Microsecond); !got.Equal(want) {
			t.Errorf("5000/s: wake for request %d at %v, want %v", k, got.Sub(start), want.Sub(start))
		}
	}
	fast := newSchedule(start, 50000) // every 20 µs
	// Request 1 (due at 20 µs) waits until 50 µs after request 0 was due;
	// request 3 (due at 60) until 50 after request 2 (due at 40).
	for k, want := range map[uint64]time.Time{0: us(0), 1: us(50), 2: us(70), 3: us(90)} {
		if got := fast.nextWake(k, 50*time.Microsecond); !got.Equal(want) {
			t.Errorf("50000/s: wake for request %d at %v, want %v", k, got.Sub(start), want.Sub(start))
		}
	}
}

func TestPlan(t *testing.T) {
	const us = time.Microsecond
	for _, c := range []struct {
		d, margin time.Duration
		maySpin   bool
		want      waitPlan
	}{
		{0, 20 * us, true, waitPlan{}},                                   // due: send now
		{-5 * us, 20 * us, true, waitPlan{}},                             // late: send now
		{150 * us, 20 * us, true, waitPlan{block: 130 * us}},             // sleep, wake early to spin
		{15 * us, 20 * us, true, waitPlan{spin: true}},                   // too close to sleep
		{150 * us, 20 * us, false, waitPlan{block: 150 * us}},            // no spin left: sleep to the due time
		{15 * us, 20 * us, false, waitPlan{block: 15 * us}},              //
		{10 * time.Millisecond, 20 * us, true, waitPlan{block: maxWait}}, // far: look again after maxWait
	} {
		if got := plan(c.d, c.margin, c.maySpin); got != c.want {
			t.Errorf("plan(%v, %v, %v) = %+v, want %+v", c.d, c.margin, c.maySpin, got, c.want)
		}
	}
}

// In open loop the first request is due at the start: by 2.5 periods in,
// three are due, and each one's lag is how long after its due time it
// went.
func TestQuotaAndLag(t *testing.T) {
	cfg := BenchConfig{Target: "127.0.0.1:1", Rate: 1000}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	f, err := newFlowState(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.measureFrom, f.end = start.Add(-time.Second), start.Add(time.Minute)
	now := start.Add(2500 * time.Microsecond)
	q := f.quota(now, start, 1000)
	if q != 3 {
		t.Fatalf("quota at 2.5 ms, 1000/s: %d, want 3 (due at 0, 1 and 2 ms)", q)
	}
	for range q {
		f.take(now, start, 1000)
	}
	if q := f.quota(now, start, 1000); q != 0 {
		t.Fatalf("quota after sending what was due: %d", q)
	}
	if n := f.lag.TotalCount(); n != 3 {
		t.Fatalf("%d lags recorded, want 3", n)
	}
	// The lags, smallest first: the last one due went 0.5 ms after it
	// was due, the first 2.5 ms after.
	for i, want := range []time.Duration{500 * time.Microsecond, 1500 * time.Microsecond, 2500 * time.Microsecond} {
		if got := f.lag.ValueAtPercentile(float64(i+1) * 100 / 3); !f.lag.ValuesAreEquivalent(got, int64(want)) {
			t.Fatalf("lag %d: %v, want %v", i, time.Duration(got), want)
		}
	}
}

// The wake-up delay settles near its 75th percentile, and one very late
// wake-up moves it by one step only.
func TestPacerLearn(t *testing.T) {
	p := &pacer{}
	for i := range 4000 {
		p.learn(int64(i%41) * int64(time.Microsecond)) // 0 to 40 µs, evenly
	}
	if l := time.Duration(p.late); l < 27*time.Microsecond || l > 33*time.Microsecond {
		t.Fatalf("learnt %v from delays spread evenly over 0-40 µs, want about 30 µs", l)
	}
	before := p.late
	p.learn(int64(50 * time.Millisecond))
	if d := time.Duration(p.late - before); d > time.Microsecond {
		t.Fatalf("one 50 ms wake-up moved the estimate by %v", d)
	}
	for range 10000 {
		p.learn(int64(time.Second))
	}
	if p.late != int64(maxLate) {
		t.Fatalf("estimate %v above maxLate", time.Duration(p.late))
	}
}

// A flow may spin spinShare of its time (and a little credit), no more.
func TestPacerSpinShare(t *testing.T) {
	start := time.Now()
	p := &pacer{start: start}
	at := start.Add(time.Second)
	if !p.maySpin(at) {
		t.Fatal("no spin allowed before any")
	}
	p.spun = time.Duration(float64(time.Second)*spinShare) + spinCredit
	if p.maySpin(at) {
		t.Fatalf("spinning allowed past the share: %v of %v", p.spun, time.Second)
	}
}

// A wait for a due time never ends before it; a wait for a reply ends
// when a datagram comes, and one without ends when it is due even with a
// datagram waiting.
func TestPacerWait(t *testing.T) {
	u, err := openUDPSock(echoUDP(t), 4, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	p := newPacer(u.fd, false)
	defer p.close()
	for range 50 {
		due := time.Now().Add(300 * time.Microsecond)
		if p.wait(due, false) {
			t.Fatal("a wait without replies ended early")
		}
		if now := time.Now(); now.Before(due) {
			t.Fatalf("the wait ended %v before its due time", due.Sub(now))
		}
	}
	u.queue([]byte("ping"))
	u.flush()
	// A wait with no due time gives up after maxWait, so that the flow can
	// look at its end; the echo goroutine may take longer than that on a
	// busy machine (the race detector, CI), so wait again, within a bound.
	got := false
	for end := time.Now().Add(5 * time.Second); !got && time.Now().Before(end); {
		got = p.wait(time.Time{}, true)
	}
	if !got {
		t.Fatal("the echo did not end a wait for a reply within 5 s")
	}
	due := time.Now().Add(time.Millisecond)
	if p.wait(due, false) || time.Now().Before(due) {
		t.Fatal("a datagram waiting ended a wait that was not for replies")
	}
	if n := u.read(); n != 1 || string(u.data(0)) != "ping" {
		t.Fatalf("read %d datagrams", n)
	}
}

// Every datagram the open-loop UDP socket takes carries the time the
// kernel stamped on it: after it was sent, before it was read.
func TestUDPSockStamps(t *testing.T) {
	u, err := openUDPSock(echoUDP(t), 4, 2048)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	before := time.Now().UnixNano()
	for _, m := range []string{"a", "bb", "ccc"} {
		u.queue([]byte(m))
	}
	u.flush()
	var got []string
	for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
		n := u.read()
		after := time.Now().UnixNano()
		for i := range n {
			got = append(got, string(u.data(i)))
			if s := u.stamp(i); s < before || s > after {
				t.Fatalf("datagram %q stamped %d ns from the send, read %d ns after it", u.data(i), s-before, after-before)
			}
		}
		time.Sleep(time.Millisecond)
	}
	if len(got) != 3 {
		t.Fatalf("echoed %q", got)
	}
}

// echoUDP serves a UDP echo on loopback until the test ends.
func echoUDP(t *testing.T) string {
	return testutil.AnswerUDP(t, func(req []byte) []byte { return req })
}

// The open-loop TCP connection: what is written comes back; a read with
// its deadline passed and nothing there times out, as net.Conn's do, and
// one with something there takes it.
func TestFDConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	c, err := dialFD(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != ln.Addr().String() {
		t.Fatalf("remote %v, want %v", c.RemoteAddr(), ln.Addr())
	}
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	var ne net.Error
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline with nothing there: %v", err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 100000) // more than the socket takes at once without a reader
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 0, len(msg))
	done := make(chan error, 1)
	go func() { _, err := c.Write(msg); done <- err }()
	buf := make([]byte, 64<<10)
	for len(got) < len(msg) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-done; err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("write: %v; %d bytes back, equal %v", err, len(got), bytes.Equal(got, msg))
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("read past its deadline with a byte there: %d, %v", n, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
