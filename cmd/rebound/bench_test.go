package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
)

func TestBenchMemcacheCommand(t *testing.T) {
	addr := testutil.StartMemcached(t)
	for _, transport := range []string{"udp", "tcp"} {
		var out, errb bytes.Buffer
		code := run([]string{"bench", "--protocol", "memcache", "--target", addr, "--transport", transport, "--op", "mix=get:90,set:10",
			"--keys", "200", "--value-size", "64", "--window", "16", "--duration", "300ms", "--warmup", "0s", "--json", "--quiet"}, &out, &errb)
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", transport, code, errb.String())
		}
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("%s: not JSON: %q", transport, out.String())
		}
		if m["protocol"] != "memcache" || m["bad"].(float64) != 0 || m["hits"].(float64) == 0 || m["throughput"].(float64) <= 0 {
			t.Fatalf("%s: %v", transport, m)
		}
		if _, ok := m["lag_p50_us"]; ok {
			t.Fatalf("%s: a lag in closed loop: %v", transport, m)
		}
	}
}

// Open loop: the summary tells the schedule's lag and the service time
// apart from the latency, in JSON and in text, with the load generator's
// own CPU.
func TestBenchOpenLoopCommand(t *testing.T) {
	addr := testutil.StartMemcached(t)
	for _, transport := range []string{"udp", "tcp"} {
		args := []string{"bench", "--protocol", "memcache", "--target", addr, "--transport", transport, "--keys", "200",
			"--rate", "1000", "--duration", "500ms", "--warmup", "100ms", "--quiet"}
		var out, errb bytes.Buffer
		if code := run(append(args, "--json"), &out, &errb); code != exitOK {
			t.Fatalf("%s: exit %d: %s", transport, code, errb.String())
		}
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("%s: not JSON: %q", transport, out.String())
		}
		for _, k := range []string{"lag_p50_us", "lag_p99_us", "lag_p999_us", "lag_max_us", "service_p50_us", "service_p99_us",
			"service_p999_us", "service_max_us", "bench_cpu", "pace_us"} {
			if _, ok := m[k].(float64); !ok {
				t.Fatalf("%s: no %s in %v", transport, k, m)
			}
		}
		if m["service_p50_us"].(float64) <= 0 || m["service_p50_us"].(float64) > m["p50_us"].(float64) || m["lag_max_us"].(float64) > m["max_us"].(float64) {
			t.Fatalf("%s: service time or lag out of the latency: %v", transport, m)
		}
		out.Reset()
		if code := run(args, &out, &errb); code != exitOK {
			t.Fatalf("%s: exit %d: %s", transport, code, errb.String())
		}
		for _, line := range []string{"\nlag         p50 ", "\nservice     p50 ", "\nbench cpu   "} {
			if !strings.Contains(out.String(), line) {
				t.Fatalf("%s: no %q in\n%s", transport, line, out.String())
			}
		}
	}
}

func TestBenchMemcacheUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--protocol", "memcache", "--op", "ping"},
		{"bench", "--protocol", "memcache", "--op", "mix=get:50,del:50"},
		{"bench", "--protocol", "redis"},
		{"bench", "--queues", "2"},                                                          // queues are AF_XDP's
		{"bench", "--transport", "xdp", "--iface", "lo", "--queues", "0"},                   // at least one
		{"bench", "--transport", "xdp", "--iface", "lo", "--queues", "2", "--workers", "3"}, // a flow per queue
		{"bench", "--cpus", "1-0"},
		{"bench", "--cpus", "1023"}, // not a CPU this process may use
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "-h"}, &out, &errb); code != exitOK || !strings.Contains(errb.String(), "--protocol memcache") {
		t.Errorf("bench -h: exit %d %q", code, errb.String())
	}
}
