package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/svgplot"
	"github.com/rebound-net/rebound/internal/testutil"
)

// svgSeries parses an SVG written by svgplot and returns its series' names
// and the number of points each draws.
func svgSeries(t *testing.T, file string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
		Groups  []struct {
			Class    string `xml:"class,attr"`
			Name     string `xml:"data-name,attr"`
			Polyline struct {
				Points string `xml:"points,attr"`
			} `xml:"polyline"`
		} `xml:"g"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: not XML: %v", file, err)
	}
	out := map[string]int{}
	for _, g := range doc.Groups {
		if g.Class == "series" {
			out[g.Name] = len(strings.Fields(g.Polyline.Points))
		}
	}
	return out
}

// TestBenchHistPlot runs the bench with --hist: the text spectrum and its
// SVG plot beside it; then --plot draws two saved spectra in one SVG.
func TestBenchHistPlot(t *testing.T) {
	addr := testutil.LoopbackServer(t)
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		var out, errb bytes.Buffer
		code := run([]string{"bench", "--target", addr, "--duration", "200ms", "--warmup", "0s", "--quiet",
			"--hist", filepath.Join(dir, name+".hist")}, &out, &errb)
		if code != exitOK || errb.Len() > 0 {
			t.Fatalf("bench --hist: exit %d: %s", code, errb.String())
		}
	}
	f, err := os.Open(filepath.Join(dir, "a.hist"))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := svgplot.ParsePercentiles(f)
	f.Close()
	if err != nil {
		t.Fatalf("a.hist: %v", err)
	}
	got := svgSeries(t, filepath.Join(dir, "a.svg"))
	if len(got) != 1 || got[addr] != len(pts) {
		t.Fatalf("a.svg series %v, want %s with the %d points of a.hist", got, addr, len(pts))
	}

	var out, errb bytes.Buffer
	both := filepath.Join(dir, "both.svg")
	code := run([]string{"bench", "--plot", both, "--log-y", "--title", "two runs", "first=" + filepath.Join(dir, "a.hist"),
		"second=" + filepath.Join(dir, "b.hist")}, &out, &errb)
	if code != exitOK {
		t.Fatalf("bench --plot: exit %d: %s", code, errb.String())
	}
	got = svgSeries(t, both)
	if len(got) != 2 || got["first"] != len(pts) || got["second"] == 0 {
		t.Fatalf("both.svg series %v, want first (%d points) and second", got, len(pts))
	}
	if b, _ := os.ReadFile(both); !bytes.Contains(b, []byte("two runs")) || !bytes.Contains(b, []byte("log scale")) {
		t.Error("both.svg has no title, or its latency axis is not on a log scale (--log-y)")
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"bench", "--plot", both}, exitUsage},
		{[]string{"bench", "--plot", both, "nameonly"}, exitUsage},
		{[]string{"bench", "--plot", both, "x=" + filepath.Join(dir, "missing.hist")}, exitFailure},
		{[]string{"bench", "--plot", both, "x=" + both}, exitFailure}, // not a spectrum
		{[]string{"bench", "--target", addr, "stray"}, exitUsage},
	} {
		errb.Reset()
		if code := run(c.args, &out, &errb); code != c.code || errb.Len() == 0 {
			t.Errorf("%v: exit %d (want %d), stderr %q", c.args, code, c.code, errb.String())
		}
	}
	for in, want := range map[string]string{"x.hist": "x.svg", "d/x.txt": "d/x.svg", "x": "x.svg", "x.svg": "x.svg.svg"} {
		if got := svgName(in); got != want {
			t.Errorf("svgName(%q) = %q, want %q", in, got, want)
		}
	}
}
