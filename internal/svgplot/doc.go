// Package svgplot draws latency percentile spectra as SVG, the picture
// HdrHistogram's plotter draws: latency (linear, up) against percentile on
// a log scale of 1/(1-p) (across), so that 90%, 99%, 99.9% and 99.99% each
// get the same width and the tail is as easy to read as the median.
//
// A Spectrum holds one or more series of (percentile, latency) points, as
// an HDR histogram's cumulative distribution gives them; Render writes a
// self-contained SVG document (no scripts, no external fonts or styles)
// that a browser or GitHub's README renderer shows as it is.
// ParsePercentiles reads the text HdrHistogram's PercentilesPrint writes
// (what 'rebound bench --hist' writes), so that runs saved earlier can be
// drawn together.
//
// Standard library only: the document is written with fmt and escaped
// with encoding/xml.
//
// Gotchas:
//   - The 100th percentile (1/(1-p) infinite) is drawn at the right edge of
//     the axis, which ends at the decade past the last finite point, capped
//     at 99.9999%.
//   - Series are drawn in the order given, each in the next colour of a
//     fixed palette; the legend names them in the same order.
package svgplot
