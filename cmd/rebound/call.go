package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/codec/rebound"
)

const callExamples = `  rebound call --target 127.0.0.1:7000 ping hello
  rebound call --target 127.0.0.1:7000 set user:1 '{"name":"ada"}' --ttl 300
  rebound call --target 127.0.0.1:7000 get user:1
  rebound call --target 127.0.0.1:7000 --tcp del user:1
  rebound call --target [2001:2::2]:7000 --json get user:1

  # memcached's protocol (memcached, or 'rebound serve' on its memcache
  # port; target 127.0.0.1:11211 by default), over TCP unless said:
  rebound call --protocol memcache set greeting hello --ttl 60 --flags 7
  rebound call --protocol memcache get greeting
  rebound call --protocol memcache --transport udp get greeting
  rebound call --protocol memcache del greeting
  rebound call --protocol memcache raw 'mg greeting v f t'    # any lines, each sent with \r\n; prints the reply
  rebound call --protocol memcache raw 'set k 0 0 2' 'hi'     # a data block is a line of its own

Exit status: 0 OK, 1 the server answered an error status (e.g. NOT_FOUND;
memcache: a miss, NOT_STORED, or an ERROR reply), 2 usage error, 3 no answer
(timeout, network error).
`

func callCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("call", "call --target HOST:PORT [--protocol rebound|memcache] [--transport udp|tcp] [--json] ping [TEXT] | get KEY | set KEY VALUE [--ttl S] [--flags N] | del KEY | raw LINE...", callExamples, stderr)
	target := fs.String("target", "127.0.0.1:7000", "server `HOST:PORT` (default 127.0.0.1:11211 with --protocol memcache)")
	protocol := fs.String("protocol", "rebound", "`PROTOCOL`: rebound, or memcache (memcached's text protocol)")
	transport := fs.String("transport", "", "`TRANSPORT`: udp or tcp (default: udp for rebound, tcp for memcache, where udp serves get only)")
	tcp := fs.Bool("tcp", false, "use TCP (--transport tcp)")
	mcFlags := fs.Uint("flags", 0, "with --protocol memcache set: the item's client flags (32 bits)")
	asJSON := fs.Bool("json", false, "print the reply as one JSON object")
	timeout := fs.Duration("timeout", time.Second, "per attempt")
	retries := fs.Int("retries", 2, "UDP resends after a timeout")
	var ttl ttlFlag
	fs.Var(&ttl, "ttl", "with set: time to live in `SECONDS` (or a duration like 5m; 0: none)")
	pad := fs.Bool("pad", false, "with get over UDP: on TRUNCATED, first retry with a padded GET")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "rebound call: %s\n", msg)
		return exitUsage
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	switch *transport {
	case "":
	case "tcp":
		*tcp = true
	case "udp":
		if *tcp {
			return usageErr("--tcp and --transport udp: choose one")
		}
	default:
		return usageErr(fmt.Sprintf("--transport %q: want udp or tcp", *transport))
	}
	switch *protocol {
	case "rebound":
		if flagSet(fs, "flags") {
			return usageErr("--flags is for --protocol memcache")
		}
	case "memcache", "memcached":
		if !flagSet(fs, "target") {
			*target = "127.0.0.1:11211"
		}
		if *mcFlags > 1<<32-1 {
			return usageErr("--flags: memcached flags are 32 bits")
		}
		return callMemcache(mcCall{target: *target, udp: *transport == "udp", asJSON: *asJSON, timeout: *timeout,
			retries: *retries, ttl: time.Duration(ttl) * time.Second, flags: uint32(*mcFlags)}, pos, stdout, stderr)
	default:
		return usageErr(fmt.Sprintf("--protocol %q: want rebound or memcache", *protocol))
	}
	op, rest := strings.ToLower(pos[0]), pos[1:]
	var (
		opcode  rebound.Op
		payload []byte
	)
	needKey := func(n int) ([]byte, bool) {
		if len(rest) != n {
			return nil, false
		}
		k := []byte(rest[0])
		return k, len(k) >= 1 && len(k) <= rebound.MaxKeyLen
	}
	switch op {
	case "ping":
		if len(rest) > 1 {
			return usageErr("ping takes at most one argument (quote text with spaces)")
		}
		opcode = rebound.OpPing
		if len(rest) == 1 {
			payload = []byte(rest[0])
		}
	case "get", "del":
		key, ok := needKey(1)
		if !ok {
			return usageErr(op + " takes one KEY of 1 to 250 bytes")
		}
		opcode = map[string]rebound.Op{"get": rebound.OpGet, "del": rebound.OpDel}[op]
		payload = append([]byte{byte(len(key))}, key...)
	case "set":
		key, ok := needKey(2)
		if !ok {
			return usageErr("set takes KEY (1 to 250 bytes) and VALUE")
		}
		secs := uint32(ttl)
		payload = make([]byte, 5, 5+len(key)+len(rest[1]))
		payload[0] = byte(len(key))
		payload[1], payload[2], payload[3], payload[4] = byte(secs>>24), byte(secs>>16), byte(secs>>8), byte(secs)
		payload = append(append(payload, key...), rest[1]...)
		opcode = rebound.OpSet
	case "raw":
		return usageErr("raw is for --protocol memcache")
	default:
		return usageErr(fmt.Sprintf("unknown operation %q: want ping, get, set or del", op))
	}
	ctx := context.Background()
	c, err := client.Dial(ctx, *target, client.Options{TCP: *tcp, Timeout: *timeout, Retries: max(*retries, -1), PadGets: *pad})
	if err != nil {
		fmt.Fprintf(stderr, "rebound call: %v\n", err)
		return exitFailure
	}
	defer c.Close()
	r, err := c.Do(ctx, opcode, payload)
	if err != nil {
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(map[string]any{"op": opcode.String(), "error": err.Error()})
		}
		fmt.Fprintf(stderr, "rebound call: %s to %s: %v\n", opcode, *target, err)
		return exitFailure
	}
	if *asJSON {
		out := map[string]any{
			"op": r.Op.String(), "status": r.Status.String(), "status_code": int(r.Status), "flags": flagNames(r.Flags),
			"seq": r.Seq, "len": r.Len, "rtt_us": r.RTT.Microseconds(), "via": r.Via, "payload_hex": hex.EncodeToString(r.Payload),
		}
		if utf8.Valid(r.Payload) {
			out["payload"] = string(r.Payload)
		}
		_ = json.NewEncoder(stdout).Encode(out)
	} else {
		fmt.Fprintf(stdout, "%s %s  seq=%d flags=%s len=%d rtt=%s via %s\n", r.Op, r.Status, r.Seq,
			strings.Join(flagNames(r.Flags), "|"), r.Len, r.RTT.Round(time.Microsecond), r.Via)
		if r.Via == "tcp-after-truncated" {
			fmt.Fprintln(stdout, "note: the UDP reply was TRUNCATED (value too large for the amplification bound); asked again over TCP")
		}
		if len(r.Payload) > 0 {
			if utf8.Valid(r.Payload) {
				fmt.Fprintf(stdout, "%s\n", r.Payload)
			} else {
				fmt.Fprint(stdout, hex.Dump(r.Payload))
			}
		}
	}
	if r.Status != rebound.StatusOK {
		return exitStatus
	}
	if r.Flags&rebound.FlagTruncated != 0 {
		fmt.Fprintln(stderr, "rebound call: reply TRUNCATED")
		return exitStatus
	}
	return exitOK
}

func flagNames(f uint8) []string {
	names := []string{}
	if f&rebound.FlagResponse != 0 {
		names = append(names, "RESPONSE")
	}
	if f&rebound.FlagTruncated != 0 {
		names = append(names, "TRUNCATED")
	}
	if rest := f &^ (rebound.FlagResponse | rebound.FlagTruncated); rest != 0 {
		names = append(names, fmt.Sprintf("0x%02x", rest))
	}
	return names
}

// ttlFlag is a TTL in whole seconds: "60" or a Go duration like "5m".
type ttlFlag uint32

func (t *ttlFlag) String() string { return strconv.FormatUint(uint64(*t), 10) }

func (t *ttlFlag) Set(s string) error {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		*t = ttlFlag(n)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d/time.Second > 1<<32-1 {
		return fmt.Errorf("want seconds (e.g. 60) or a duration (e.g. 5m)")
	}
	*t = ttlFlag(d / time.Second)
	return nil
}

// mcCall is a 'rebound call --protocol memcache'.
type mcCall struct {
	target  string
	udp     bool
	asJSON  bool
	timeout time.Duration
	retries int
	ttl     time.Duration
	flags   uint32
}

func callMemcache(c mcCall, pos []string, stdout, stderr io.Writer) int {
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "rebound call: --protocol memcache: %s\n", msg)
		return exitUsage
	}
	op, rest := strings.ToLower(pos[0]), pos[1:]
	switch {
	case op == "get" || op == "del" || op == "delete":
		if len(rest) != 1 {
			return usageErr(op + " takes one KEY")
		}
	case op == "set":
		if len(rest) != 2 {
			return usageErr("set takes KEY and VALUE")
		}
	case op == "raw":
		if len(rest) == 0 {
			return usageErr("raw takes one or more LINEs, e.g. raw 'mg k v f' (each is sent with \\r\\n)")
		}
		for _, l := range rest {
			if strings.ContainsAny(l, "\r\n") {
				return usageErr("a raw LINE holds no \\r or \\n: give each line as its own argument")
			}
		}
	case op == "ping":
		return usageErr("memcached has no ping: try raw version, or raw mn")
	default:
		return usageErr(fmt.Sprintf("unknown operation %q: want get, set, del or raw", op))
	}
	if op != "raw" && !validMCKey(rest[0]) {
		return usageErr(fmt.Sprintf("key %q: a memcached key is 1 to 250 bytes without spaces or control characters", rest[0]))
	}
	if c.udp && op != "get" {
		return usageErr("over --transport udp only get is sent: use tcp (the default) for " + op)
	}
	ctx := context.Background()
	m, err := client.DialMemcache(ctx, c.target, client.MemcacheOptions{UDP: c.udp, Timeout: c.timeout, Retries: max(c.retries, -1)})
	if err != nil {
		fmt.Fprintf(stderr, "rebound call: %v\n", err)
		return exitFailure
	}
	defer m.Close()
	via := "tcp"
	if c.udp {
		via = "udp"
	}
	out := map[string]any{"op": op, "via": via}
	start := time.Now()
	var (
		item  client.Item
		reply []byte
	)
	switch op {
	case "get":
		item, err = m.Get(ctx, []byte(rest[0]))
	case "set":
		err = m.Set(ctx, []byte(rest[0]), []byte(rest[1]), c.flags, c.ttl)
	case "del", "delete":
		err = m.Delete(ctx, []byte(rest[0]))
	case "raw":
		reply, err = m.Raw(ctx, rest...)
	}
	rtt := time.Since(start)
	out["rtt_us"] = rtt.Microseconds()
	var mcErr *client.MemcacheError
	code := exitOK
	var result string
	switch {
	case op == "raw" && err == nil:
		result = "OK"
		for _, p := range []string{"ERROR", "CLIENT_ERROR", "SERVER_ERROR"} {
			if strings.HasPrefix(string(reply), p) {
				result, code = p, exitStatus
			}
		}
		out["reply"] = string(reply)
	case err == nil && op == "get":
		result = "HIT"
		out["flags"], out["len"], out["value"] = item.Flags, len(item.Value), string(item.Value)
	case err == nil:
		result = map[string]string{"set": "STORED", "del": "DELETED", "delete": "DELETED"}[op]
	case errors.Is(err, client.ErrCacheMiss):
		result, code = map[string]string{"get": "MISS", "del": "NOT_FOUND", "delete": "NOT_FOUND"}[op], exitStatus
	case errors.Is(err, client.ErrNotStored):
		result, code = "NOT_STORED", exitStatus
	case errors.As(err, &mcErr):
		result, code = mcErr.Reply, exitStatus
	default:
		if op == "raw" && len(reply) > 0 {
			fmt.Fprint(stdout, strings.ReplaceAll(string(reply), "\r\n", "\n"))
		}
		if c.asJSON {
			out["error"] = err.Error()
			_ = json.NewEncoder(stdout).Encode(out)
		}
		fmt.Fprintf(stderr, "rebound call: %s to %s: %v\n", op, c.target, err)
		if op == "raw" && errors.Is(err, client.ErrTimeout) {
			fmt.Fprintln(stderr, "rebound call: a command still waiting for its data block? give the data as the next LINE, e.g. raw 'set k 0 0 2' 'hi'")
		}
		return exitFailure
	}
	out["result"] = result
	if c.asJSON {
		_ = json.NewEncoder(stdout).Encode(out)
		return code
	}
	switch {
	case op == "raw":
		fmt.Fprint(stdout, strings.ReplaceAll(string(reply), "\r\n", "\n"))
		if len(reply) == 0 {
			fmt.Fprintf(stderr, "(no reply: the command is quiet, or noreply) rtt=%s via tcp\n", rtt.Round(time.Microsecond))
		}
	case result == "HIT":
		fmt.Fprintf(stdout, "VALUE %s flags=%d len=%d rtt=%s via %s\n", rest[0], item.Flags, len(item.Value), rtt.Round(time.Microsecond), via)
		if utf8.Valid(item.Value) {
			fmt.Fprintf(stdout, "%s\n", item.Value)
		} else {
			fmt.Fprint(stdout, hex.Dump(item.Value))
		}
	default:
		fmt.Fprintf(stdout, "%s rtt=%s via %s\n", result, rtt.Round(time.Microsecond), via)
	}
	return code
}

func validMCKey(k string) bool {
	if len(k) == 0 || len(k) > 250 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}
