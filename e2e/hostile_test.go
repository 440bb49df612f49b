package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Hostile clients: what one request or one connection may cost the server
// is fixed before the work, whatever the request asks for. Each test runs
// 'rebound serve --mode udp' on loopback (no root) and reads the server
// process's peak RSS (VmHWM) before and after the hostile input.

// hostileBudget is the most a hostile input may raise the server's peak RSS.
const hostileBudget = 64 << 20

// bigValue is a 1 MB value (memcached's default item size limit is 1 MiB).
var bigValue = bytes.Repeat([]byte("x"), 1_000_000)

// storeBig stores the 1 MB item "big" over TCP and checks it is STORED.
func storeBig(t *testing.T, tg *mcTarget) {
	t.Helper()
	cmd := fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(bigValue), bigValue)
	if got, err := tg.textCommand(t, cmd, "\r\n"); err != nil || got != "STORED\r\n" {
		t.Fatalf("set big: %q %v", got, err)
	}
}

// peakRise runs hostile against a fresh server holding "big" and returns
// how much it raised the server's peak RSS, in bytes.
func peakRise(t *testing.T, tg *mcTarget, hostile func()) int64 {
	t.Helper()
	pid := tg.Srv.cmd.Process.Pid
	before := procStatus(t, pid, "VmHWM")
	hostile()
	tg.alive(t)
	after := procStatus(t, pid, "VmHWM")
	rise := int64(after) - int64(before)
	t.Logf("peak RSS %d KiB -> %d KiB (+%d MiB), RSS now %d KiB", before>>10, after>>10, rise>>20, procStatus(t, pid, "VmRSS")>>10)
	return rise
}

// TestHostileUDPMultiGet: one datagram naming a 1 MB item hundreds of times
// is refused with the "use TCP" error at once, having built at most one
// value: the amplification bound is a budget fixed before the request runs,
// not a measure of a reply already built. Both the 1,213-byte datagram of
// the report and the largest datagram UDP carries.
func TestHostileUDPMultiGet(t *testing.T) {
	for _, keys := range []int{300, 16_000} {
		t.Run(fmt.Sprintf("%d keys", keys), func(t *testing.T) {
			tg := startMC(t, mcReboundUDP, mcOptions{})
			storeBig(t, tg)
			cmd := "get" + strings.Repeat(" big", keys) + "\r\n"
			if len(cmd)+8 > 65507 {
				t.Fatalf("request of %d bytes does not fit a datagram", len(cmd)+8)
			}
			c := tg.dial(t, "udp")
			defer c.Close()
			var ds []mcDatagram
			var took time.Duration
			rise := peakRise(t, tg, func() {
				start := time.Now()
				ds = mcUDPRequest(t, c, 7, cmd, 10*time.Second, 200*time.Millisecond, func([]mcDatagram) bool {
					took = time.Since(start)
					return true
				})
			})
			if len(ds) != 1 || !strings.Contains(string(ds[0].Payload), "use TCP") {
				t.Fatalf("want one 'use TCP' datagram, got %s", mcDescribe(ds))
			}
			// Time to answer is a bound too: the old server built the
			// whole reply first (2.9 s for 300 keys).
			t.Logf("answered in %v", took)
			if took > time.Second {
				t.Errorf("the 'use TCP' error took %v: the request did the work before it was refused", took)
			}
			if rise >= hostileBudget {
				t.Errorf("one datagram raised the server's peak RSS by %d MiB (bound %d MiB)", rise>>20, hostileBudget>>20)
			}
			// The server still answers a plain get of the item over TCP.
			if got, err := tg.textCommand(t, "get big\r\n", "END\r\n"); err != nil || len(got) < len(bigValue) {
				t.Fatalf("get big over TCP after: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestHostileUnreadPipeline: a TCP client pipelines thousands of reads of a
// 1 MB item and reads nothing. The server writes as it goes, so once the
// socket buffers are full its write blocks and it stops reading: the
// connection holds a bounded output, not the replies of the whole
// pipeline. Meta gets, and multi-gets.
func TestHostileUnreadPipeline(t *testing.T) {
	cases := []struct{ name, line string }{
		{"mg", "mg big v\r\n"},
		{"multi-get", "get big big big big\r\n"},
		{"gat", "gat 0 big big\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := startMC(t, mcReboundUDP, mcOptions{})
			storeBig(t, tg)
			c := tg.dial(t, "tcp")
			defer c.Close()
			pipeline := []byte(strings.Repeat(tc.line, 2048))
			rise := peakRise(t, tg, func() {
				// Write the pipeline without reading; the server stops
				// reading once its writes block, so our write blocks too:
				// give it a deadline and go on with what was taken.
				_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
				n, _ := c.Write(pipeline)
				t.Logf("the server took %d of %d pipelined bytes while the client read nothing", n, len(pipeline))
				// Let the server run whatever it read.
				waitQuiet(t, tg.Srv.cmd.Process.Pid)
			})
			if rise >= hostileBudget {
				t.Errorf("an unread pipeline raised the server's peak RSS by %d MiB (bound %d MiB)", rise>>20, hostileBudget>>20)
			}
		})
	}
}

// waitQuiet waits until the process's CPU time stops growing (it has done
// what it could with its input), at most 10 s.
func waitQuiet(t *testing.T, pid int) {
	t.Helper()
	cpu := func() string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		return f[11] + "/" + f[12] // utime/stime
	}
	deadline := time.Now().Add(10 * time.Second)
	last, still := cpu(), 0
	for time.Now().Before(deadline) && still < 5 {
		time.Sleep(100 * time.Millisecond)
		if now := cpu(); now == last {
			still++
		} else {
			last, still = now, 0
		}
	}
}
