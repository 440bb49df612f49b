package svgplot

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Point is one step of a cumulative latency distribution: Percentile
// (0 to 100) of the samples took Value or less.
type Point struct {
	Percentile float64
	Value      float64
}

// Series is one curve: a name for the legend and its points, in rising
// percentile order.
type Series struct {
	Name   string
	Points []Point
}

// Spectrum is a percentile spectrum plot. The zero Width and Height mean
// 800 by 480; Unit labels the latency axis (e.g. "µs"). The latency axis
// is linear from 0, as HdrHistogram's plotter draws it, or with LogY a
// log scale of whole decades, for curves whose tails are orders of
// magnitude apart (values at or below 0 are drawn at its bottom).
type Spectrum struct {
	Title  string
	Unit   string
	Width  int
	Height int
	LogY   bool
	Series []Series
}

// ErrNoPoints is returned by Render when no series has a point, and by
// ParsePercentiles when the text holds none.
var ErrNoPoints = errors.New("svgplot: no points")

// maxDecades is how far right the percentile axis reaches at most:
// 10^6, i.e. 99.9999%.
const maxDecades = 6

// palette is the colours of the series, in order (colour-blind safe,
// Okabe and Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// plot area margins, in pixels.
const (
	marginLeft   = 70
	marginRight  = 20
	marginTop    = 40
	marginBottom = 50
	legendRow    = 18
)

// Render writes the plot as an SVG document.
func (s *Spectrum) Render(w io.Writer) error {
	width, height := s.Width, s.Height
	if width <= 0 {
		width = 800
	}
	if height <= 0 {
		height = 480
	}
	decades, top, bottom, n := 1, 0.0, math.Inf(1), 0
	for _, ser := range s.Series {
		for _, p := range ser.Points {
			if math.IsNaN(p.Value) || math.IsNaN(p.Percentile) || math.IsInf(p.Value, 0) {
				return fmt.Errorf("svgplot: series %q: NaN or infinite point", ser.Name)
			}
			n++
			top = math.Max(top, p.Value)
			if p.Value > 0 {
				bottom = math.Min(bottom, p.Value)
			}
			if x := inverse(p.Percentile); !math.IsInf(x, 1) {
				decades = max(decades, int(math.Ceil(math.Log10(x)-1e-9)))
			}
		}
	}
	if n == 0 {
		return ErrNoPoints
	}
	decades = min(decades, maxDecades)
	// The latency axis: its ticks, and where a value goes (0 bottom, 1 top).
	var ticks []float64
	var frac func(v float64) float64
	if s.LogY {
		if math.IsInf(bottom, 1) {
			bottom = 1
		}
		lo := math.Floor(math.Log10(bottom))
		hi := math.Max(math.Ceil(math.Log10(math.Max(top, bottom))), lo+1)
		for e := lo; e <= hi; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		frac = func(v float64) float64 {
			if v <= 0 {
				return 0
			}
			return math.Max(0, (math.Log10(v)-lo)/(hi-lo))
		}
	} else {
		step := niceStep(top)
		k := max(int(math.Ceil(top/step-1e-9)), 1)
		for i := 0; i <= k; i++ {
			ticks = append(ticks, step*float64(i))
		}
		yMax := ticks[k]
		frac = func(v float64) float64 { return v / yMax }
	}

	legendH := legendRow * len(s.Series)
	plotW := float64(width - marginLeft - marginRight)
	plotH := float64(height - marginTop - marginBottom - legendH)
	if plotW < 50 || plotH < 50 {
		return fmt.Errorf("svgplot: %dx%d is too small for %d series", width, height, len(s.Series))
	}
	x0, y0 := float64(marginLeft), float64(marginTop)+plotH // the origin, in pixels
	xOf := func(pct float64) float64 {
		d := math.Log10(inverse(pct))
		if math.IsInf(d, 1) || d > float64(decades) {
			d = float64(decades)
		}
		return x0 + plotW*math.Max(d, 0)/float64(decades)
	}
	yOf := func(v float64) float64 { return y0 - plotH*frac(v) }

	b := bufio.NewWriter(w)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	if s.Title != "" {
		fmt.Fprintf(b, `<text class="title" x="%d" y="24" text-anchor="middle" font-size="15">%s</text>`+"\n", width/2, esc(s.Title))
	}
	// Percentile axis: a tick per decade of 1/(1-p).
	fmt.Fprintf(b, `<g class="axis x">`+"\n")
	for d := 0; d <= decades; d++ {
		x := x0 + plotW*float64(d)/float64(decades)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", x, y0, x, y0-plotH)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, y0+16, percentLabel(d))
	}
	fmt.Fprintf(b, `<text class="label" x="%.1f" y="%.1f" text-anchor="middle">percentile</text>`+"\n", x0+plotW/2, y0+36)
	fmt.Fprintf(b, "</g>\n")
	// Latency axis.
	fmt.Fprintf(b, `<g class="axis y">`+"\n")
	for _, v := range ticks {
		y := yOf(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", x0, y, x0+plotW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, strconv.FormatFloat(v, 'f', -1, 64))
	}
	label := "latency"
	switch {
	case s.Unit != "" && s.LogY:
		label += " (" + s.Unit + ", log scale)"
	case s.Unit != "":
		label += " (" + s.Unit + ")"
	case s.LogY:
		label += " (log scale)"
	}
	fmt.Fprintf(b, `<text class="label" x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n",
		y0-plotH/2, y0-plotH/2, esc(label))
	fmt.Fprintf(b, "</g>\n")
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888888"/>`+"\n", x0, y0-plotH, plotW, plotH)
	// The curves, then the legend under the axis label.
	for i, ser := range s.Series {
		colour := palette[i%len(palette)]
		fmt.Fprintf(b, `<g class="series" data-name="%s">`+"\n", esc(ser.Name))
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, colour)
		for j, p := range ser.Points {
			if j > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(b, "%.1f,%.1f", xOf(p.Percentile), yOf(p.Value))
		}
		fmt.Fprintf(b, `"/>`+"\n")
		ly := y0 + float64(marginBottom) + float64(i*legendRow)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", x0, ly-4, x0+24, ly-4, colour)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x0+30, ly, esc(ser.Name))
		fmt.Fprintf(b, "</g>\n")
	}
	fmt.Fprintf(b, "</svg>\n")
	return b.Flush()
}

// inverse is 1/(1-p) for p in percent; +Inf at 100.
func inverse(pct float64) float64 {
	if pct >= 100 {
		return math.Inf(1)
	}
	return 1 / (1 - pct/100)
}

// percentLabel names the tick at 10^d on the 1/(1-p) axis: 0%, 90%,
// 99%, 99.9%...
func percentLabel(d int) string {
	switch d {
	case 0:
		return "0%"
	case 1:
		return "90%"
	case 2:
		return "99%"
	}
	return "99." + strings.Repeat("9", d-2) + "%"
}

// niceStep returns a tick step of 1, 2 or 5 times a power of ten that
// divides [0, top] into 4 to 10 parts.
func niceStep(top float64) float64 {
	if top <= 0 {
		return 1
	}
	raw := top / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}

// ParsePercentiles reads the percentile distribution that HdrHistogram's
// PercentilesPrint writes: a header line, then lines of value, percentile
// (0 to 1), total count and 1/(1-percentile), then "#[" footer lines.
// Values are returned as written (in the unit they were scaled to).
func ParsePercentiles(r io.Reader) ([]Point, error) {
	var pts []Point
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "Value" {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("svgplot: line %d: %d fields, want 4 (value percentile count 1/(1-p))", line, len(f))
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("svgplot: line %d: value: %w", line, err)
		}
		p, err := strconv.ParseFloat(f[1], 64)
		if err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("svgplot: line %d: percentile %q: want 0 to 1", line, f[1])
		}
		pts = append(pts, Point{Percentile: p * 100, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pts) == 0 {
		return nil, ErrNoPoints
	}
	return pts, nil
}
