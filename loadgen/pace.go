package loadgen

import (
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// schedule is an open loop's timetable: request k (from 0) of a flow is due
// at start + k/rate.
type schedule struct {
	start  time.Time
	period float64 // nanoseconds between two requests
}

func newSchedule(start time.Time, perSec float64) schedule {
	return schedule{start: start, period: 1e9 / perSec}
}

// due returns when request k is due.
func (s schedule) due(k uint64) time.Time {
	return s.start.Add(time.Duration(float64(k) * s.period))
}

// dueBy returns how many requests are due by t: the number of k with
// due(k) not after t. Request 0 is due at the start.
func (s schedule) dueBy(t time.Time) uint64 {
	e := t.Sub(s.start)
	if e < 0 {
		return 0
	}
	n := uint64(float64(e)/s.period) + 1
	// The division may round either way: settle on due itself.
	for n > 0 && s.due(n-1).After(t) {
		n--
	}
	for !s.due(n).After(t) {
		n++
	}
	return n
}

// Pacing. Go's timers and read deadlines wake a goroutine through the
// netpoller, whose epoll_wait sleeps whole milliseconds: a wait of 100 µs
// lasts a millisecond or more, and an open loop that waits so sends its
// requests in bursts, up to milliseconds late. An open-loop flow waits in
// ppoll(2) itself instead, on a locked OS thread whose timer slack is 1 ns,
// and on a socket of its own that Go's netpoller does not watch (a reply
// would wake a runtime thread for nothing; see pace_sock.go). It wakes when
// its next request is due, a few tens of microseconds late at worst on a
// virtual machine (the wake-up of a sleeping thread); to send on time it
// wakes that much early and spins for the rest: it learns how late its
// wake-ups come (about the 75th percentile of the last few dozen) and spins
// just that long, and never more than spinShare of the flow's time, so that
// it leaves the CPU to the server it measures; past that share it sleeps to
// the due time and is as late as the wake-up is.
//
// A wake-up costs CPU (some 20 µs of it on a small virtual machine), so a
// flow wakes to send no sooner than gap (BenchConfig.Pace) after the last
// request it sent was due: requests due closer together than that leave
// together, the later ones up to gap late.
// Either way every request's lag (its actual send time minus its intended
// one) is measured and reported apart from its latency, which counts from
// the intended time.
const (
	// maxWait bounds one wait, so the flow looks at its end time, its
	// context and its expired requests at least this often.
	maxWait = 2 * time.Millisecond
	// spinShare is the most of its wall time a flow may spend spinning
	// to make a due time; spinCredit lets a short run or a slow start
	// spin before it has earned the share.
	spinShare  = 0.125
	spinCredit = 2 * time.Millisecond
	// spinExtra is added to the learnt wake-up delay: the margin of a
	// wait that is to end early enough.
	spinExtra = 2 * time.Microsecond
	// maxLate bounds the wake-up delay the pacer believes in (a machine
	// whose wake-ups come later than that does not get spun for).
	maxLate = 200 * time.Microsecond
	// DefaultPace is the default of BenchConfig.Pace.
	DefaultPace = 50 * time.Microsecond
)

// nextWake is when a flow wakes to send request k: when it is due, but
// no sooner than gap after request k-1 was due (not after it went: a late
// wake-up does not make the next one late too).
func (s schedule) nextWake(k uint64, gap time.Duration) time.Time {
	due := s.due(k)
	if k == 0 {
		return due
	}
	if g := s.due(k - 1).Add(gap); due.Before(g) {
		return g
	}
	return due
}

// waitPlan is how a wait for a due time in d goes on: block in ppoll for
// block; or spin (poll without blocking, and look at the time again); or,
// neither, not wait at all.
type waitPlan struct {
	block time.Duration
	spin  bool
}

// plan says how to wait for a due time d from now, given the margin the
// wake-up needs and whether spinning is allowed now. Blocking waits end
// margin early so that the rest can be spun; without leave to spin, the
// wait blocks until the due time itself.
func plan(d, margin time.Duration, maySpin bool) waitPlan {
	switch {
	case d <= 0:
		return waitPlan{}
	case d > maxWait+margin:
		return waitPlan{block: maxWait}
	case !maySpin:
		return waitPlan{block: d}
	case d <= margin:
		return waitPlan{spin: true}
	}
	return waitPlan{block: d - margin}
}

// pacer waits on one socket for a due time, or a reply; see Pacing above.
// It locks its goroutine to its OS thread until close.
type pacer struct {
	fd    int
	raw   bool // wait in a raw syscall, keeping the P (see newPacer)
	start time.Time
	slack int   // the thread's timer slack before, restored by close
	late  int64 // learnt wake-up delay, ns
	spun  time.Duration

	pfd [1]unix.PollFd
	ts  unix.Timespec
}

// newPacer makes a pacer for socket fd. With raw, its waits go to the
// kernel without telling Go's scheduler: the flow keeps its P while it
// sleeps, which spares a runtime thread waking up around every wait (that
// doubles the CPU a wait costs), but holds the P from every other
// goroutine until the wait ends (2 ms at most) or the scheduler preempts
// it: only for a flow that leaves a P to spare.
func newPacer(fd int, raw bool) *pacer {
	runtime.LockOSThread()
	p := &pacer{fd: fd, raw: raw, start: time.Now(), slack: -1, late: int64(10 * time.Microsecond)}
	if s, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0); err == nil {
		p.slack = s
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	}
	p.pfd[0].Fd = int32(fd)
	return p
}

// close gives the thread its timer slack back and unlocks it.
func (p *pacer) close() {
	if p.slack > 0 {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(p.slack), 0, 0, 0)
	}
	runtime.UnlockOSThread()
}

// margin is how early a blocking wait ends to be spun out.
func (p *pacer) margin() time.Duration { return time.Duration(p.late) + spinExtra }

// maySpin reports whether the flow has spun less than its share so far.
func (p *pacer) maySpin(now time.Time) bool {
	return p.spun < time.Duration(float64(now.Sub(p.start))*spinShare)+spinCredit
}

// wait returns false once due has come (a zero due: after maxWait). With
// onReply it returns true as soon as the socket has something to read;
// without, replies wait in the socket (their arrival stamped by the
// kernel) and only an error on the socket ends the wait early.
func (p *pacer) wait(due time.Time, onReply bool) bool {
	p.pfd[0].Events = 0
	if onReply {
		p.pfd[0].Events = unix.POLLIN
	}
	for {
		now := time.Now()
		d := maxWait + p.margin() + 1
		if !due.IsZero() {
			d = due.Sub(now)
		}
		w := plan(d, p.margin(), p.maySpin(now))
		switch {
		case w.block <= 0 && !w.spin:
			return false
		case w.spin && !onReply:
			// Nothing to look at but the time.
			for time.Now().Before(due) {
			}
			p.spun += time.Since(now)
			return false
		}
		if p.poll(w.block) {
			return true
		}
		after := time.Now()
		if w.spin {
			p.spun += after.Sub(now)
			continue
		}
		p.learn(int64(after.Sub(now) - w.block))
		if w.block >= maxWait {
			return false
		}
	}
}

// poll is one ppoll of the socket with timeout d (0: do not block); it
// reports whether an event came. EINTR counts as a timeout: the caller
// looks at the time again.
func (p *pacer) poll(d time.Duration) bool {
	p.ts = unix.NsecToTimespec(int64(d))
	p.pfd[0].Revents = 0
	var n uintptr
	var e unix.Errno
	// unsafe: pfd and ts are fields of p, which the caller holds.
	if p.raw {
		n, _, e = unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&p.pfd[0])), 1, uintptr(unsafe.Pointer(&p.ts)), 0, 0, 0)
	} else {
		n, _, e = unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&p.pfd[0])), 1, uintptr(unsafe.Pointer(&p.ts)), 0, 0, 0)
	}
	return e == 0 && n > 0
}

// learn takes how late a timed-out wait woke: the estimate moves up by 3
// steps when a wake-up was later than it, down by 1 when earlier, which
// settles where a quarter of the wake-ups are later (a 75th percentile,
// which one wake-up delayed by a busy machine moves by a step only).
func (p *pacer) learn(late int64) {
	const step = int64(250 * time.Nanosecond)
	if late > p.late {
		p.late = min(p.late+3*step, int64(maxLate))
	} else {
		p.late = max(p.late-step, 0)
	}
}
