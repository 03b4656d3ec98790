package main

import (
	"errors"
	"fmt"
	"image/color"
	"maps"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chart is one SVG: lines drawn from the reports of one or more workloads.
type chart struct {
	file, title, xLabel, yLabel string
	lines                       []lineSpec
}

// lineSpec turns each row of a workload's reports into a point (xCol,
// yCol) of the series that name gives it; the runs of one point are
// reduced to their median.
type lineSpec struct {
	workload   string
	xCol, yCol string
	name       func(r report, row []any) string
	floor      bool // the plain-TCP floor: dashed and grey, beside the gateway's lines
}

func charts() []chart {
	fanout := func(pct string) chart {
		return chart{
			file:   "fanout-" + pct + ".svg",
			title:  "Fan-out delivery latency " + pct + " (publish to socket read)",
			xLabel: "publish rate, events/s on one channel",
			yLabel: pct + " latency, ms",
			lines: []lineSpec{
				{workload: "fanout", xCol: "rate ev/s", yCol: pct + " ms", name: fanoutName},
				{workload: "floor", xCol: "rate ev/s", yCol: pct + " ms", floor: true, name: func(r report, _ []any) string {
					return fmt.Sprintf("plain-TCP floor, %s sockets", r.param("subs"))
				}},
			},
		}
	}
	return []chart{
		fanout("p50"),
		fanout("p99"),
		{
			file:   "idle-rss.svg",
			title:  "Idle memory per connection",
			xLabel: "idle connections",
			yLabel: "RSS per connection, KiB",
			lines: []lineSpec{
				{workload: "idle", xCol: "connections", yCol: "gateway RSS/conn KiB", name: func(r report, _ []any) string {
					return fmt.Sprintf("gateway, %s channels", r.param("channels"))
				}},
				{workload: "idle", xCol: "connections", yCol: "RSS/conn KiB (all pids)", floor: true, name: func(r report, _ []any) string {
					return fmt.Sprintf("gateway + NATS, %s channels", r.param("channels"))
				}},
			},
		},
		{
			file:   "storm-connects.svg",
			title:  "Connect storm: ticket + upgrade + ready",
			xLabel: "clients",
			yLabel: "connects/s",
			lines: []lineSpec{
				{workload: "storm", xCol: "clients", yCol: "connects/s", name: func(r report, row []any) string {
					return stormName(r, row, "")
				}},
			},
		},
		{
			file:   "storm-latency.svg",
			title:  "Connect storm: time to ready",
			xLabel: "clients",
			yLabel: "connect latency, ms",
			lines: []lineSpec{
				{workload: "storm", xCol: "clients", yCol: "p50 ms", name: func(r report, row []any) string {
					return stormName(r, row, "p50")
				}},
				{workload: "storm", xCol: "clients", yCol: "p99 ms", floor: true, name: func(r report, row []any) string {
					return stormName(r, row, "p99")
				}},
			},
		},
	}
}

// fanoutName: one series per subscriber count, and per bus path when a
// report ran both (stream and core NATS).
func fanoutName(r report, row []any) string {
	name := fmt.Sprintf("gateway, %s subscribers", r.param("subs"))
	if p := cell(row, slices.Index(r.Columns, "path")); p != "" && r.param("path") == "both" {
		name += ", " + p
	}
	return name
}

func stormName(r report, row []any, pct string) string {
	name := ""
	if pct != "" {
		name = pct + ", "
	}
	if t := r.param("target"); t != "" && t != "ocvr" {
		name += t + ", "
	}
	if n := cell(row, slices.Index(r.Columns, "in flight")); n != "" {
		return name + n + " in flight"
	}
	return name + r.param("inflight") + " in flight"
}

// series is one line of a chart: per x, every run's y.
type series struct {
	name  string
	floor bool
	pts   map[float64][]float64
}

// collect gathers the chart's series from the reports. errNoData when no
// report of its workloads exists.
func (c chart) collect(reps []report) ([]*series, error) {
	byName := map[string]*series{}
	for _, l := range c.lines {
		for _, r := range reps {
			if r.Workload != l.workload {
				continue
			}
			xi, err := r.column(l.xCol)
			if err != nil {
				return nil, err
			}
			yi, err := r.column(l.yCol)
			if err != nil {
				return nil, err
			}
			for _, row := range r.Rows {
				x, err := r.number(row, xi, l.xCol)
				if err != nil {
					return nil, err
				}
				y, err := r.number(row, yi, l.yCol)
				if err != nil {
					return nil, err
				}
				name := l.name(r, row)
				s := byName[name]
				if s == nil {
					s = &series{name: name, floor: l.floor, pts: map[float64][]float64{}}
					byName[name] = s
				}
				s.pts[x] = append(s.pts[x], y)
			}
		}
	}
	if len(byName) == 0 {
		return nil, errNoData
	}
	// Gateway lines first, then the floors; by name within each.
	out := slices.Collect(maps.Values(byName))
	slices.SortFunc(out, func(a, b *series) int {
		if a.floor != b.floor {
			if a.floor {
				return 1
			}
			return -1
		}
		return compareNames(a.name, b.name)
	})
	return out, nil
}

// compareNames orders "…, 1000 subscribers" before "…, 2500 subscribers"
// (numbers by value, not as text).
func compareNames(a, b string) int {
	var na, nb float64
	var pa, pb string
	if _, err := fmt.Sscanf(a, "gateway, %g %s", &na, &pa); err == nil {
		if _, err := fmt.Sscanf(b, "gateway, %g %s", &nb, &pb); err == nil && na != nb {
			if na < nb {
				return -1
			}
			return 1
		}
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// xys is the series' points sorted by x, each the median of its runs.
func (s *series) xys() plotter.XYs {
	xs := slices.Sorted(maps.Keys(s.pts))
	out := make(plotter.XYs, len(xs))
	for i, x := range xs {
		out[i] = plotter.XY{X: x, Y: median(s.pts[x])}
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// draw writes the chart as SVG into dir.
func (c chart) draw(ss []*series, dir string) (string, error) {
	p := plot.New()
	p.Title.Text = c.title
	p.X.Label.Text = c.xLabel
	p.Y.Label.Text = c.yLabel
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	grey := color.RGBA{R: 110, G: 110, B: 110, A: 255}
	// Headroom above the highest point for the legend (one line per
	// series), so that it does not cover the lines.
	// A margin left and right, so that the outer ticks' labels fit.
	top, left, right := 0.0, math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, xy := range s.xys() {
			top, left, right = max(top, xy.Y), min(left, xy.X), max(right, xy.X)
		}
	}
	p.Y.Max = top * (1.1 + 0.1*float64(len(ss)))
	if margin := 0.05 * (right - left); margin > 0 {
		p.X.Min, p.X.Max = left-margin, right+margin
	}
	for i, s := range ss {
		line, points, err := plotter.NewLinePoints(s.xys())
		if err != nil {
			return "", fmt.Errorf("%s, %s: %w", c.file, s.name, err)
		}
		col := plotutil.Color(i)
		if s.floor {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			if c.lines[len(c.lines)-1].workload == "floor" {
				col = grey
			}
		}
		line.Color = col
		line.Width = vg.Points(1.5)
		points.Color = col
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
	}
	path := filepath.Join(dir, c.file)
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return "", fmt.Errorf("%s: %w", c.file, err)
	}
	return path, nil
}

// drawAll writes every chart it has reports for into dir and returns the
// files written and the charts skipped for want of reports; an error if no
// chart could be drawn at all.
func drawAll(reps []report, dir string) (written, skipped []string, err error) {
	for _, c := range charts() {
		ss, err := c.collect(reps)
		if errors.Is(err, errNoData) {
			skipped = append(skipped, c.file)
			continue
		}
		if err != nil {
			return written, skipped, err
		}
		path, err := c.draw(ss, dir)
		if err != nil {
			return written, skipped, err
		}
		written = append(written, path)
	}
	if len(written) == 0 {
		return nil, skipped, errors.New("no chart has data (no fanout, floor, idle or storm reports)")
	}
	return written, skipped, nil
}
