package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
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

Exit status: 0 OK, 1 the server answered an error status (e.g. NOT_FOUND),
2 usage error, 3 no answer (timeout, network error).
`

func callCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("call", "call --target HOST:PORT [--tcp] [--json] ping [TEXT] | get KEY | set KEY VALUE [--ttl S] | del KEY", callExamples, stderr)
	target := fs.String("target", "127.0.0.1:7000", "server `HOST:PORT`")
	tcp := fs.Bool("tcp", false, "use TCP instead of UDP")
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
