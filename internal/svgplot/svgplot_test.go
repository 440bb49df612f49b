package svgplot_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/rebound-net/rebound/internal/svgplot"
)

// doc is the part of the SVG the tests read back.
type doc struct {
	XMLName xml.Name `xml:"svg"`
	Width   int      `xml:"width,attr"`
	Height  int      `xml:"height,attr"`
	Title   []text   `xml:"text"`
	Groups  []group  `xml:"g"`
	Rects   []rect   `xml:"rect"`
}

type group struct {
	Class    string     `xml:"class,attr"`
	Name     string     `xml:"data-name,attr"`
	Texts    []text     `xml:"text"`
	Lines    []line     `xml:"line"`
	Polyline []polyline `xml:"polyline"`
}

type text struct {
	Class string  `xml:"class,attr"`
	X     float64 `xml:"x,attr"`
	Y     float64 `xml:"y,attr"`
	Body  string  `xml:",chardata"`
}

type line struct {
	X1 float64 `xml:"x1,attr"`
	Y1 float64 `xml:"y1,attr"`
	X2 float64 `xml:"x2,attr"`
	Y2 float64 `xml:"y2,attr"`
}

type polyline struct {
	Points string `xml:"points,attr"`
	Stroke string `xml:"stroke,attr"`
}

type rect struct {
	X      float64 `xml:"x,attr"`
	Y      float64 `xml:"y,attr"`
	Width  float64 `xml:"width,attr"`
	Height float64 `xml:"height,attr"`
}

type xy struct{ x, y float64 }

func render(t *testing.T, s *svgplot.Spectrum) (doc, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Render(&buf); err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := xml.Unmarshal(buf.Bytes(), &d); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	return d, buf.String()
}

func (d doc) group(class string) []group {
	var out []group
	for _, g := range d.Groups {
		if g.Class == class {
			out = append(out, g)
		}
	}
	return out
}

// box is the plot area: the rect with a position.
func (d doc) box(t *testing.T) rect {
	t.Helper()
	for _, r := range d.Rects {
		if r.X > 0 {
			return r
		}
	}
	t.Fatal("no plot area")
	return rect{}
}

func parsePoints(t *testing.T, s string) []xy {
	t.Helper()
	var out []xy
	for _, f := range strings.Fields(s) {
		a, b, ok := strings.Cut(f, ",")
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("bad point %q", f)
		}
		out = append(out, xy{x, y})
	}
	return out
}

// labels returns the tick labels of an axis and their positions (x for the
// percentile axis, y for the latency one), the axis title left out.
func labels(g group, useX bool) ([]string, []float64) {
	var names []string
	var pos []float64
	for _, tx := range g.Texts {
		if tx.Class == "label" {
			continue
		}
		names = append(names, tx.Body)
		if useX {
			pos = append(pos, tx.X)
		} else {
			pos = append(pos, tx.Y)
		}
	}
	return names, pos
}

func TestSpectrumAxesAndSeries(t *testing.T) {
	s := &svgplot.Spectrum{Title: "GET <latency> & more", Unit: "µs", Series: []svgplot.Series{
		{Name: "xdp", Points: []svgplot.Point{{0, 10}, {50, 12}, {90, 15}, {99, 20}, {99.9, 40}, {100, 55}}},
		{Name: "udp", Points: []svgplot.Point{{0, 20}, {50, 30}, {90, 31}, {99, 70}, {99.9, 90}, {99.99, 180}, {100, 230}}},
	}}
	d, raw := render(t, s)
	if d.Width != 800 || d.Height != 480 {
		t.Errorf("size %dx%d, want the default 800x480", d.Width, d.Height)
	}
	if len(d.Title) != 1 || d.Title[0].Body != "GET <latency> & more" {
		t.Errorf("title %+v, want the escaped title back", d.Title)
	}
	box := d.box(t)
	xs := d.group("axis x")
	ys := d.group("axis y")
	if len(xs) != 1 || len(ys) != 1 {
		t.Fatalf("axes: %d x, %d y groups\n%s", len(xs), len(ys), raw)
	}
	// The last finite point is at 99.99% (1/(1-p) = 10^4): four decades.
	xl, xpos := labels(xs[0], true)
	if want := []string{"0%", "90%", "99%", "99.9%", "99.99%"}; strings.Join(xl, " ") != strings.Join(want, " ") {
		t.Errorf("percentile ticks %q, want %q", xl, want)
	}
	for i := 1; i < len(xpos); i++ { // a decade each, the same width
		if w := xpos[i] - xpos[i-1]; math.Abs(w-box.Width/4) > 0.2 {
			t.Errorf("decade %d is %.1f px wide, want %.1f", i, w, box.Width/4)
		}
	}
	// Latency: 0 to at least the maximum, in round steps, upwards.
	yl, ypos := labels(ys[0], false)
	if yl[0] != "0" {
		t.Errorf("latency axis starts at %q, want 0", yl[0])
	}
	last, _ := strconv.ParseFloat(yl[len(yl)-1], 64)
	if last < 230 || last > 2*230 {
		t.Errorf("latency axis ends at %v for a maximum of 230", last)
	}
	for i := 1; i < len(ypos); i++ {
		if ypos[i] >= ypos[i-1] {
			t.Errorf("latency tick %s is not above %s", yl[i], yl[i-1])
		}
	}
	if !strings.Contains(raw, "latency (µs)") {
		t.Error("no latency axis title with the unit")
	}
	series := d.group("series")
	if len(series) != 2 || series[0].Name != "xdp" || series[1].Name != "udp" {
		t.Fatalf("series %+v, want xdp then udp", series)
	}
	if series[0].Polyline[0].Stroke == series[1].Polyline[0].Stroke {
		t.Error("two series in one colour")
	}
	for i, g := range series {
		if len(g.Polyline) != 1 {
			t.Fatalf("series %s: %d polylines", g.Name, len(g.Polyline))
		}
		pts := parsePoints(t, g.Polyline[0].Points)
		if len(pts) != len(s.Series[i].Points) {
			t.Fatalf("series %s: %d points drawn of %d", g.Name, len(pts), len(s.Series[i].Points))
		}
		for j, p := range pts {
			if p.x < box.X-0.1 || p.x > box.X+box.Width+0.1 || p.y < box.Y-0.1 || p.y > box.Y+box.Height+0.1 {
				t.Errorf("series %s point %d (%v) outside the plot %+v", g.Name, j, p, box)
			}
			if j > 0 && (p.x < pts[j-1].x || p.y > pts[j-1].y) {
				t.Errorf("series %s point %d (%v) goes left or down from %v", g.Name, j, p, pts[j-1])
			}
			// Each point sits where its percentile's and value's ticks say.
			sp := s.Series[i].Points[j]
			wantY := box.Y + box.Height - box.Height*sp.Value/last
			if math.Abs(p.y-wantY) > 0.2 {
				t.Errorf("series %s point %d: y %.1f, want %.1f", g.Name, j, p.y, wantY)
			}
			for k, lab := range xl {
				if lab == strconv.FormatFloat(sp.Percentile, 'f', -1, 64)+"%" && math.Abs(p.x-xpos[k]) > 0.2 {
					t.Errorf("series %s point at %s: x %.1f, tick at %.1f", g.Name, lab, p.x, xpos[k])
				}
			}
		}
		if end := pts[len(pts)-1]; math.Abs(end.x-(box.X+box.Width)) > 0.2 {
			t.Errorf("series %s: the 100th percentile at x %.1f, want the right edge %.1f", g.Name, end.x, box.X+box.Width)
		}
	}
}

// TestSpectrumLogY: with LogY the latency axis has a tick per decade,
// evenly spaced, and each point sits at its value's place between them.
func TestSpectrumLogY(t *testing.T) {
	s := &svgplot.Spectrum{Unit: "µs", LogY: true, Series: []svgplot.Series{
		{Name: "fast", Points: []svgplot.Point{{0, 0}, {50, 20}, {99, 100}, {100, 150}}},
		{Name: "slow", Points: []svgplot.Point{{0, 300}, {50, 1000}, {99, 30000}, {100, 35000}}},
	}}
	d, raw := render(t, s)
	box := d.box(t)
	yl, ypos := labels(d.group("axis y")[0], false)
	if want := []string{"10", "100", "1000", "10000", "100000"}; strings.Join(yl, " ") != strings.Join(want, " ") {
		t.Fatalf("latency ticks %q, want %q", yl, want)
	}
	decade := box.Height / 4
	for i := 1; i < len(ypos); i++ {
		if h := ypos[i-1] - ypos[i]; math.Abs(h-decade) > 0.2 {
			t.Errorf("decade %s to %s is %.1f px high, want %.1f", yl[i-1], yl[i], h, decade)
		}
	}
	if !strings.Contains(raw, "latency (µs, log scale)") {
		t.Error("the axis title does not say log scale")
	}
	for i, g := range d.group("series") {
		pts := parsePoints(t, g.Polyline[0].Points)
		for j, p := range pts {
			v := s.Series[i].Points[j].Value
			want := box.Y + box.Height // 0: at the bottom
			if v > 0 {
				want -= decade * (math.Log10(v) - 1)
			}
			if math.Abs(p.y-want) > 0.2 {
				t.Errorf("%s point %d (%v µs): y %.1f, want %.1f", g.Name, j, v, p.y, want)
			}
		}
	}
}

func TestSpectrumErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := (&svgplot.Spectrum{}).Render(&buf); !errors.Is(err, svgplot.ErrNoPoints) {
		t.Errorf("no series: %v, want ErrNoPoints", err)
	}
	nan := &svgplot.Spectrum{Series: []svgplot.Series{{Name: "x", Points: []svgplot.Point{{50, math.NaN()}}}}}
	if err := nan.Render(&buf); err == nil {
		t.Error("a NaN value was drawn")
	}
	tiny := &svgplot.Spectrum{Width: 60, Height: 60, Series: []svgplot.Series{{Name: "x", Points: []svgplot.Point{{50, 1}}}}}
	if err := tiny.Render(&buf); err == nil {
		t.Error("a 60x60 plot was drawn")
	}
}

// TestParsePercentiles reads back what HdrHistogram's PercentilesPrint
// writes (what 'rebound bench --hist' saves) and draws it.
func TestParsePercentiles(t *testing.T) {
	h := hdrhistogram.New(1, 60_000_000_000, 3)
	for i := int64(1); i <= 10000; i++ {
		_ = h.RecordValue(i * 1000) // 1 µs to 10 ms, in ns
	}
	var buf bytes.Buffer
	if _, err := h.PercentilesPrint(&buf, 5, 1000); err != nil {
		t.Fatal(err)
	}
	pts, err := svgplot.ParsePercentiles(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) < 20 {
		t.Fatalf("%d points", len(pts))
	}
	if pts[0].Percentile != 0 || pts[len(pts)-1].Percentile != 100 {
		t.Errorf("percentiles from %v to %v, want 0 to 100", pts[0].Percentile, pts[len(pts)-1].Percentile)
	}
	for _, p := range pts {
		want := float64(h.ValueAtPercentile(p.Percentile)) / 1000
		if math.Abs(p.Value-want) > want*0.002+0.001 {
			t.Errorf("at %v%%: %v µs, the histogram says %v", p.Percentile, p.Value, want)
		}
	}
	render(t, &svgplot.Spectrum{Unit: "µs", Series: []svgplot.Series{{Name: "h", Points: pts}}})
	for _, bad := range []string{"", "# only a footer\n", "1.0 0.5 3\n", "x 0.5 3 2.0\n", "1.0 1.5 3 2.0\n"} {
		if _, err := svgplot.ParsePercentiles(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
