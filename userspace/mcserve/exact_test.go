package mcserve_test

import (
	"strings"
	"testing"
)

// TestDifferentialDefences: memcached's own defences (issue 18, item 6).
// A line that looks like an HTTP request (an unknown command whose last
// token starts with "HTTP/") is not answered: the connection is closed, as
// memcached's t/malicious-commands.t expects. verbosity's argument is a
// number.
func TestDifferentialDefences(t *testing.T) {
	p := newPair(t)
	p.run(t,
		"GET / HTTP/1.0\r\n", "PUT /asdf/asd/fasdfasdf/sadf HTTP/1.1\r\n", "DELETE HTTP/1.1\r\n",
		// (memcached also drops the replies to earlier commands of the
		// same read: not compared, see docs/memcached.md)
		"set a 0 0 1\r\na\r\n", "GET / HTTP/1.1\r\nget a\r\n", "get a\r\n",
		"POST /x HTTP/1.1\r\nHost: example\r\n\r\n", "HEAD / HTTP/2\r\n", "OPTIONS * HTTP/1.1 \r\n",
		// memcached checks only lines whose command it does not dispatch
		// on its first letter
		"gimme / HTTP/1.0\r\n", "sx / HTTP/1.0\r\n", "mx / HTTP/1.0\r\n", "G HTTP/1.0\r\n",
		"x y HTTP/1.0\r\n", "x HTTP/ y\r\n", "bogus http/1.0\r\n",
		"x "+strings.Repeat("a ", 21)+"HTTP/1.1\r\n", "x "+strings.Repeat("a ", 22)+"HTTP/1.1\r\n",
		"verbosity 1\r\n", "verbosity x\r\n", "verbosity -1\r\n", "verbosity 1x\r\n", "verbosity noreply\r\n",
		"verbosity x noreply\r\n", "verbosity 1 2\r\n", "verbosity 99999999999\r\n", "verbosity 1\t\r\n",
		"verbosity\r\n", "verbosity 1 2 3\r\n", "verbosity 0\r\n",
	)
}

// TestDifferentialExact: the TCP differences a differential fuzzer found
// (issue 18, item 9), each as memcached 1.6 answers it.
func TestDifferentialExact(t *testing.T) {
	p := newPair(t)
	p.run(t,
		// a NUL ends the command line
		"set r2\x00x 0 0 1\r\nx\r\nget r2\r\n", "set r3 0 0 1 \x00noreply\r\ny\r\nget r3\r\n",
		"get r3\x00 nope\r\n", "\x00get r3\r\n", "mg r3\x00 v\r\n", "set r4 0 0 1\x00\r\nz\r\nget r4\r\n",
		// noreply as the last token of a line short of arguments
		"incr k noreply\r\n", "decr k noreply\r\n", "touch k noreply\r\n", "set k 0 0 noreply\r\nx\r\n",
		"cas k 0 0 1 noreply\r\nx\r\n", "incr k x noreply\r\n",
		// white space around a number
		"set k 0 0 1\t\r\nx\r\nget k\r\n", "set k 0 0 \t1\tzz\r\ny\r\nget k\r\n", "set k\t 0 0 1\r\nx\r\n",
		"set k 1\v 0 1\r\nx\r\nget k\r\n", "set k \f2 0 1\r\nx\r\nget k\r\n", "set k 0 0 1\r\r\nx\r\nget k\r\n",
		"incr k 1\t\r\n", "touch k 1000\t\r\n", "set n 0 0 1\r\n5\r\nincr n \t2\r\nincr n 2\tx\r\n",
		"set k 18446744073709551615\t- 0 1\r\nx\r\n", "mg k T\t5 v t\r\n", "mg k Tx\t5 v\r\n",
		// ms with C in modes E, A, P
		"ms me1 1 ME C5\r\nx\r\nmg me1 v\r\n", "ms ma1 1 MA C5\r\nx\r\n", "ms mp1 1 MP C0\r\nx\r\n",
		"set ma2 0 0 1\r\na\r\nms ma2 1 MA C0\r\nx\r\nmg ma2 v\r\n", "ms ma2 1 MP C0\r\ny\r\nmg ma2 v\r\n",
		"mg ma2 c\r\nms ma2 1 MA C{CAS}\r\nz\r\nmg ma2 v\r\n", "ms ma2 1 MA C1\r\nx\r\nmg ma2 v\r\n",
		"ms ma2 1 ME C0\r\nx\r\nms ma2 1 ME C9999\r\nx\r\n", "ms ma6 1 MR C5\r\nx\r\n", "ms ma7 1 MS C5\r\nx\r\n",
		// the CAS of an item stored already expired
		"ma nv1 N-1 c v\r\nmg nv1 v\r\n", "ms tm1 1 T-1 c\r\nx\r\nmg tm1\r\n", "ms tm1 1 T-1 c k\r\nx\r\n",
		// h after touch (a fetch for memcached) and after incr (kept when
		// the number fits in place)
		"set th 0 0 1\r\n1\r\nmg th h\r\ntouch th 100\r\nmg th h\r\n",
		"set ih 0 0 2\r\n10\r\nget ih\r\nincr ih 1\r\nmg ih h v\r\nincr ih 100\r\nmg ih h v\r\n",
		"set ih2 0 0 3\r\n100\r\nget ih2\r\ndecr ih2 95\r\nmg ih2 h v\r\n",
		// incr of a negative-looking value
		"set m0 0 0 2\r\n-0\r\nincr m0 1\r\n", "set m1 0 0 21\r\n-18446744073709551615\r\nincr m1 1\r\n",
		"set m2 0 0 2\r\n-5\r\nincr m2 1\r\n", "set m3 0 0 3\r\n\t-0\r\ndecr m3 1\r\n",
		// base64 keys: memcached's lenient decoding, and the key echoed
		// as memcached encodes it
		"ms YWJj 1 b\r\nx\r\nmg YWJj b k v\r\n", "mg YW!Jj b k v\r\n", "mg YWJj= b k v\r\n", "mg YQ==YWJj b k v\r\n",
		"mg Y=== b k\r\n", "mg ==== b k\r\n", "md YW.Jj b k q\r\nmn\r\n", "mg nope!! b k\r\n",
		// error texts: E (unknown to 1.6.18), long O tokens, several bad
		// tokens in one command
		"mg a E5 E5\r\n", "mg a Tx E5\r\n", "ms a 1 E5\r\nx\r\n", "md a E5\r\n", "ma a E5\r\n",
		"mg a Tx Nx\r\n", "mg a Tx MDD\r\n", "mg a MDD Tx\r\n", "mg a Tx zz\r\n", "mg a Fx\r\n", "mg a Tx Fx\r\n",
		"mg a Fx Tx\r\n", "mg a Jx Dx\r\n", "mg a Dx Jx\r\n", "mg a Cx\r\n", "mg a T1 \xff\r\n", "mg a \x80\r\n",
		"ms a 1 MX O"+strings.Repeat("o", 40)+"\r\nx\r\n", "ms a 1 O"+strings.Repeat("o", 40)+" MX\r\nx\r\n",
		"ms a 1 O"+strings.Repeat("o", 40)+" Tx\r\nx\r\n", "md a O"+strings.Repeat("o", 40)+" Tx\r\n",
		"set lo 0 0 1\r\n5\r\nma lo O"+strings.Repeat("o", 40)+"\r\nget lo\r\n", "ma lo2 N0 O"+strings.Repeat("o", 40)+"\r\nget lo2\r\n",
		"ma lo O"+strings.Repeat("o", 40)+" Mx\r\nget lo\r\n", "ma nolo O"+strings.Repeat("o", 40)+"\r\n",
		"set s 0 0 1\r\ns\r\nma s O"+strings.Repeat("o", 40)+"\r\n",
		"set lg 0 0 1\r\ng\r\nmg lg O"+strings.Repeat("o", 40)+"\r\nmg lg h\r\n", "mg nolg O"+strings.Repeat("o", 40)+"\r\n",
		"set lh 0 0 1\r\ng\r\nmg lh h O"+strings.Repeat("o", 40)+"\r\nmg lh h\r\n",
		"set lt 0 0 1\r\ng\r\nmg lt T100 O"+strings.Repeat("o", 40)+"\r\nmg lt t\r\n",
		"set lu 0 0 1\r\ng\r\nmg lu O"+strings.Repeat("o", 40)+" T100\r\nmg lu t\r\n",
		"ms a 1 "+strings.Repeat("f ", 17)+"\r\nx\r\n", "ms a x "+strings.Repeat("f ", 17)+"\r\nx\r\n",
	)
}
