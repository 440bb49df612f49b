package main

import (
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strings"
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"}

// panel is one chart: a value of the rows against queues.
type panel struct {
	title string
	value func(Row) float64
}

// renderSVG draws two charts side by side, replies/s and replies per
// server core-second against queues, a line per server.
func renderSVG(sb *strings.Builder, rep *Report) {
	const w, h, pw = 1000, 440, 500
	panels := []panel{
		{"replies/s", func(r Row) float64 { return r.RepliesPerS }},
		{"replies per server core-second", func(r Row) float64 { return r.RepliesPerCoreS }},
	}
	var servers []string
	maxQ := 1
	for _, r := range rep.Rows {
		if !slices.Contains(servers, r.Server) {
			servers = append(servers, r.Server)
		}
		maxQ = max(maxQ, r.Queues)
	}
	fmt.Fprintf(sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(sb, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(sb, `<text x="%d" y="18" text-anchor="middle" font-size="14">%s</text>`+"\n", w/2, esc("Scaling with queues: "+rep.Machine))
	for pi, p := range panels {
		x0, y0, pwid, ph := float64(pi*pw+70), 50.0, float64(pw-100), 280.0
		top := 0.0
		for _, r := range rep.Rows {
			top = max(top, p.value(r))
		}
		step := niceStep(top)
		top = math.Max(step, math.Ceil(top/step)*step)
		xAt := func(q int) float64 {
			if maxQ == 1 {
				return x0 + pwid/2
			}
			return x0 + float64(q-1)/float64(maxQ-1)*pwid
		}
		yAt := func(v float64) float64 { return y0 + ph - v/top*ph }
		fmt.Fprintf(sb, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="13">%s</text>`+"\n", x0+pwid/2, y0-12, esc(p.title))
		for v := 0.0; v <= top+step/2; v += step {
			fmt.Fprintf(sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, yAt(v), x0+pwid, yAt(v))
			fmt.Fprintf(sb, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, yAt(v)+4, si(v))
		}
		for q := 1; q <= maxQ; q++ {
			fmt.Fprintf(sb, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", xAt(q), y0+ph+18, q)
		}
		fmt.Fprintf(sb, `<text x="%.1f" y="%.1f" text-anchor="middle">queues (server cores)</text>`+"\n", x0+pwid/2, y0+ph+36)
		fmt.Fprintf(sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", x0, y0, pwid, ph)
		for si, s := range servers {
			color := palette[si%len(palette)]
			var pts []string
			for _, r := range rep.Rows {
				if r.Server != s {
					continue
				}
				x, y := xAt(r.Queues), yAt(p.value(r))
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				fmt.Fprintf(sb, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s</title></circle>`+"\n", x, y, color,
					esc(fmt.Sprintf("%s, %d queue(s): %s", s, r.Queues, si2(p.value(r)))))
			}
			if len(pts) > 1 {
				fmt.Fprintf(sb, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
			}
		}
	}
	for si, s := range servers {
		x := 70 + si*230
		label := serverLabel[s]
		if label == "" {
			label = s
		}
		fmt.Fprintf(sb, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, 392, palette[si%len(palette)], x+20, 398, esc(label))
	}
	fmt.Fprintf(sb, `<text x="%d" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", w/2, 428, esc(rep.Settings))
	sb.WriteString("</svg>\n")
}

// niceStep is a round grid step that splits 0..top into about 5.
func niceStep(top float64) float64 {
	if top <= 0 {
		return 1
	}
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// si writes an axis value as 250k or 1.5M.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v/1e6), "0"), ".") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v/1e3), "0"), ".") + "k"
	}
	return fmt.Sprintf("%.0f", v)
}

func si2(v float64) string { return fmt.Sprintf("%.0f", v) }

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
