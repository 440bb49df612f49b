package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
	"github.com/rebound-net/rebound/loadgen"
)

func TestBenchTraceCommand(t *testing.T) {
	addr := testutil.StartMemcached(t, "-m", "8")
	var out, errb bytes.Buffer
	code := run([]string{"bench", "--trace", "fill", "--target", addr, "--keys", "5000", "--value-size", "100", "--json"}, &out, &errb)
	var fill loadgen.FillResult
	if err := json.Unmarshal(out.Bytes(), &fill); code != exitOK || err != nil {
		t.Fatalf("fill: exit %d, %v: %s%s", code, err, out.String(), errb.String())
	}
	if fill.Sets != 5000 || fill.Stats.CurrItems != 5000 {
		t.Errorf("fill: %d sets, %d items: want 5000 of each", fill.Sets, fill.Stats.CurrItems)
	}
	out.Reset()
	errb.Reset()
	code = run([]string{"bench", "--trace", "zipf", "--target", addr, "--keys", "50000", "--trace-ops", "5000", "--trace-sizes", "100-200",
		"--trace-shift", "2000-3000", "--quiet"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("zipf: exit %d: %s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"warm-up", "steady", "shift", "hit ratio"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("zipf: no %q in\n%s", want, out.String())
		}
	}
}

func TestBenchTraceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--trace", "uniform"},
		{"bench", "--trace", "zipf", "--op", "get"},
		{"bench", "--trace", "zipf", "--duration", "1s"},
		{"bench", "--trace", "zipf", "--transport", "udp"},
		{"bench", "--trace", "zipf", "--protocol", "rebound"},
		{"bench", "--trace", "zipf", "--zipf", "1.2"},
		{"bench", "--trace", "zipf", "--trace-sizes", "300-200"},
		{"bench", "--trace", "fill", "--tls-ca", "ca.pem"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
