package main

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var pathColors = map[string]color.Color{
	"native": color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff},
	"tayga":  color.RGBA{R: 0xe6, G: 0x7e, B: 0x22, A: 0xff},
	"bihnfq": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
}

// chartTiles are the panels of results.png.
var chartTiles = []string{
	figTCPUp, figTCPDown, figRTT,
	figUDPRx, figUDPSatRx, figUDPShort,
	figCPUUp, figCPUDown, figRSS,
}

func defOf(key string) figureDef {
	for _, d := range figureDefs {
		if d.Key == key {
			return d
		}
	}
	return figureDef{Key: key, Label: key}
}

// panel draws one figure as one bar per path; n/a paths get no bar.
func panel(s *Summary, key string) (*plot.Plot, error) {
	d := defOf(key)
	p := plot.New()
	p.Title.Text = d.Label
	p.Y.Label.Text = d.Unit
	p.Y.Min = 0
	names := make([]string, len(paths))
	ymax := 0.0
	for i, pa := range paths {
		names[i] = pa.Name
		f := s.Paths[pa.Key][key]
		if f == nil || math.IsNaN(f.Median) {
			names[i] += " (n/a)"
			continue
		}
		bc, err := plotter.NewBarChart(plotter.Values{f.Median}, vg.Points(28))
		if err != nil {
			return nil, err
		}
		bc.XMin = float64(i)
		bc.Color = pathColors[pa.Key]
		bc.LineStyle.Width = 0
		p.Add(bc)
		ymax = math.Max(ymax, f.Median)
		lab, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    []plotter.XY{{X: float64(i), Y: f.Median}},
			Labels: []string{fmtNum(f.Median, d.Digits)},
		})
		if err != nil {
			return nil, err
		}
		for j := range lab.TextStyle {
			lab.TextStyle[j].XAlign = draw.XCenter
			lab.TextStyle[j].YAlign = draw.YBottom
		}
		p.Add(lab)
	}
	if ymax <= 0 {
		ymax = 1
	}
	p.Y.Max = ymax * 1.18
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(paths))-0.4
	return p, nil
}

func writeChart(s *Summary, path string) error {
	const cols = 3
	rows := (len(chartTiles) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i, key := range chartTiles {
		p, err := panel(s, key)
		if err != nil {
			return fmt.Errorf("chart %s: %w", key, err)
		}
		grid[i/cols] = append(grid[i/cols], p)
	}
	for r := range grid {
		for len(grid[r]) < cols {
			grid[r] = append(grid[r], plot.New())
		}
	}
	img := vgimg.New(vg.Points(1200), vg.Points(1000))
	dc := draw.New(img)
	title := draw.TextStyle{Color: color.Black, Font: plot.DefaultFont, XAlign: draw.XCenter,
		YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
	title.Font.Size = vg.Points(15)
	dc.FillText(title, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y - vg.Points(18)},
		fmt.Sprintf("bih-nfq vs TAYGA vs native IPv6 — medians of %s runs, %s", s.Conditions["runs"], s.Date))
	body := dc
	body.Max.Y -= vg.Points(36)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(14), PadY: vg.Points(14),
		PadTop: vg.Points(4), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(grid, tiles, body)
	for r := range grid {
		for c := range grid[r] {
			grid[r][c].Draw(canvases[r][c])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
