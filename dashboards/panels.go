package dashboards

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// kind is the visualization of a panel.
type kind int

const (
	timeSeries kind = iota
	statKind
	gaugeKind
	barGauge
	stateTimeline
)

// target is one PromQL query of a panel.
type target struct {
	expr   string
	legend string
}

// step is one threshold: from value (nil for the base step) on, color.
type step struct {
	value *float64
	color string
}

// override gives the series of one query (byQuery, a refId) or of one
// display name (byName) their own thresholds.
type override struct {
	byQuery, byName string
	thresholds      []step
}

// link is a panel or dashboard link to a URL.
type link struct {
	title, url, tooltip string
}

// panel describes one panel before it becomes an SDK builder. Every field is
// optional but kind, title and targets.
type panel struct {
	kind        kind
	title, desc string
	unit        string
	min, max    *float64
	decimals    *float64
	thresholds  []step
	mappings    []dashboard.ValueMapping
	overrides   []override
	targets     []target
	links       []link
	// w and h are the grid width (of 24) and height; zero means 12 by 8.
	w, h uint32
	// stacked stacks the series of a time series panel.
	stacked bool
}

// Colors used for thresholds and value mappings.
const (
	green  = "green"
	yellow = "yellow"
	orange = "orange"
	red    = "red"
)

func ptr[T any](v T) *T { return &v }

// num rounds v to ten significant digits so that ratios computed from
// percentages (99.99/100) print as written (0.9999).
func num(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 10, 64), 64)
	return r
}

// fmtNum formats v for a PromQL expression or a label.
func fmtNum(v float64) string { return strconv.FormatFloat(num(v), 'g', 10, 64) }

// base starts thresholds with color below every value.
func base(color string) step { return step{color: color} }

// at is a threshold step at v.
func at(v float64, color string) step { return step{value: ptr(num(v)), color: color} }

// ordered sorts steps by value, the base first, and drops a step whose value
// repeats an earlier one's (the one listed first wins).
func ordered(steps ...step) []step {
	out := make([]step, 0, len(steps))
	for _, s := range steps {
		if s.value != nil && slices.ContainsFunc(out, func(o step) bool { return o.value != nil && *o.value == *s.value }) {
			continue
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b step) int {
		switch {
		case a.value == nil || b.value == nil:
			return cmp.Compare(boolInt(b.value == nil), boolInt(a.value == nil))
		default:
			return cmp.Compare(*a.value, *b.value)
		}
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func thresholdsConfig(steps []step) dashboard.ThresholdsConfig {
	out := dashboard.ThresholdsConfig{Mode: dashboard.ThresholdsModeAbsolute}
	for _, s := range steps {
		out.Steps = append(out.Steps, dashboard.Threshold{Value: s.value, Color: s.color})
	}
	return out
}

func thresholdsBuilder(steps []step) *dashboard.ThresholdsConfigBuilder {
	tc := thresholdsConfig(steps)
	return dashboard.NewThresholdsConfigBuilder().Mode(tc.Mode).Steps(tc.Steps)
}

// valueMap maps exact values to texts and colors, in the order given.
func valueMap(entries ...valueText) []dashboard.ValueMapping {
	opts := map[string]dashboard.ValueMappingResult{}
	for i, e := range entries {
		opts[fmtNum(e.value)] = dashboard.ValueMappingResult{Text: ptr(e.text), Color: ptr(e.color), Index: ptr(int32(i))}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: opts}}}
}

type valueText struct {
	value       float64
	text, color string
}

// refID names the i-th query of a panel: A … Z, then AA, AB, ….
func refID(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return refID(i/26-1) + string(rune('A'+i%26))
}

// sel writes a series selector: name{m1, m2, …}.
func sel(name string, matchers ...string) string {
	if len(matchers) == 0 {
		return name
	}
	return name + "{" + strings.Join(matchers, ", ") + "}"
}

// eq and re write label matchers.
func eq(label, value string) string { return fmt.Sprintf("%s=%q", label, value) }
func re(label, value string) string { return fmt.Sprintf("%s=~%q", label, value) }

// rateOf is a rate over Grafana's rate interval.
func rateOf(selector string) string { return "rate(" + selector + "[$__rate_interval])" }

// quantile is histogram_quantile over the request-duration buckets
// selected by matchers, grouped by the labels in by.
func quantile(q float64, by []string, matchers ...string) string {
	return fmt.Sprintf("histogram_quantile(%s, sum by (%s) (%s))",
		fmtNum(q), strings.Join(slices.Concat([]string{catalog.LabelLe}, by), ", "),
		rateOf(sel(catalog.RequestDuration.Name+"_bucket", matchers...)))
}

// errorRatio is the share of requests that failed server-side, grouped by
// the labels in by; 0, not nothing, when there was no error.
func errorRatio(by []string, matchers ...string) string {
	count := catalog.RequestDuration.Name + "_count"
	grouping := "sum"
	if len(by) > 0 {
		grouping = "sum by (" + strings.Join(by, ", ") + ")"
	}
	all := fmt.Sprintf("%s (%s)", grouping, rateOf(sel(count, matchers...)))
	errs := fmt.Sprintf("%s (%s)", grouping, rateOf(sel(count, slices.Concat(matchers, []string{eq(catalog.LabelOutcome, catalog.OutcomeError)})...)))
	return fmt.Sprintf("(%s or %s * 0) / %s", errs, all, all)
}

// legendOn is the legend every time series and state timeline panel shows.
func legendOn() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().
		ShowLegend(true).
		DisplayMode(common.LegendDisplayModeTable).
		Placement(common.LegendPlacementBottom).
		Calcs([]string{"lastNotNull", "max"})
}

func lastValue() *common.ReduceDataOptionsBuilder {
	return common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)
}

// sdkPanel is the part of the SDK's panel builders this package uses; every
// panel kind's builder implements it.
type sdkPanel[B any] interface {
	cog.Builder[dashboard.Panel]
	Id(id uint32) B
	Title(title string) B
	Description(description string) B
	Datasource(datasource common.DataSourceRef) B
	GridPos(gridPos dashboard.GridPos) B
	WithTarget(target cog.Builder[variants.Dataquery]) B
	Unit(unit string) B
	Min(min float64) B
	Max(max float64) B
	Decimals(decimals float64) B
	Thresholds(thresholds cog.Builder[dashboard.ThresholdsConfig]) B
	ColorScheme(color cog.Builder[dashboard.FieldColor]) B
	Mappings(mappings []dashboard.ValueMapping) B
	Links(links []cog.Builder[dashboard.DashboardLink]) B
	OverrideByQuery(queryRefId string, properties []dashboard.DynamicConfigValue) B
	OverrideByName(name string, properties []dashboard.DynamicConfigValue) B
}

// apply sets what all panel kinds share.
func apply[B sdkPanel[B]](b B, p panel, id uint32, pos dashboard.GridPos, ds common.DataSourceRef, instant bool) B {
	b.Id(id)
	b.Title(p.title)
	if p.desc != "" {
		b.Description(p.desc)
	}
	b.Datasource(ds)
	b.GridPos(pos)
	for i, t := range p.targets {
		q := prometheus.NewDataqueryBuilder().
			Datasource(ds).
			RefId(refID(i)).
			Expr(t.expr).
			EditorMode(prometheus.QueryEditorModeCode)
		if t.legend != "" {
			q.LegendFormat(t.legend)
		}
		if instant {
			q.Instant()
		} else {
			q.Range()
		}
		b.WithTarget(q)
	}
	if p.unit != "" {
		b.Unit(p.unit)
	}
	if p.min != nil {
		b.Min(*p.min)
	}
	if p.max != nil {
		b.Max(*p.max)
	}
	if p.decimals != nil {
		b.Decimals(*p.decimals)
	}
	if len(p.thresholds) > 0 {
		b.Thresholds(thresholdsBuilder(p.thresholds))
	}
	if len(p.mappings) > 0 {
		b.Mappings(p.mappings)
	}
	for _, o := range p.overrides {
		props := []dashboard.DynamicConfigValue{{Id: "thresholds", Value: thresholdsConfig(o.thresholds)}}
		if o.byQuery != "" {
			b.OverrideByQuery(o.byQuery, props)
		} else {
			b.OverrideByName(o.byName, props)
		}
	}
	if len(p.links) > 0 {
		links := make([]cog.Builder[dashboard.DashboardLink], 0, len(p.links))
		for _, l := range p.links {
			links = append(links, linkBuilder(l))
		}
		b.Links(links)
	}
	return b
}

func linkBuilder(l link) *dashboard.DashboardLinkBuilder {
	b := dashboard.NewDashboardLinkBuilder(l.title).
		Type(dashboard.DashboardLinkTypeLink).
		Url(l.url).
		TargetBlank(true)
	if l.tooltip != "" {
		b.Tooltip(l.tooltip)
	}
	return b
}

// build turns p into the SDK builder of its kind.
func (p panel) build(id uint32, pos dashboard.GridPos, ds common.DataSourceRef) cog.Builder[dashboard.Panel] {
	thresholdColors := dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)
	switch p.kind {
	case statKind:
		b := apply(stat.NewPanelBuilder(), p, id, pos, ds, true).
			ReduceOptions(lastValue()).
			GraphMode(common.BigValueGraphModeArea).
			ColorMode(common.BigValueColorModeValue).
			TextMode(common.BigValueTextModeValueAndName).
			Orientation(common.VizOrientationAuto)
		return b.ColorScheme(thresholdColors)
	case gaugeKind:
		b := apply(gauge.NewPanelBuilder(), p, id, pos, ds, true).
			ReduceOptions(lastValue()).
			ShowThresholdMarkers(true).
			Orientation(common.VizOrientationAuto)
		return b.ColorScheme(thresholdColors)
	case barGauge:
		b := apply(bargauge.NewPanelBuilder(), p, id, pos, ds, true).
			ReduceOptions(lastValue()).
			DisplayMode(common.BarGaugeDisplayModeBasic).
			Orientation(common.VizOrientationHorizontal).
			ShowUnfilled(true)
		return b.ColorScheme(thresholdColors)
	case stateTimeline:
		b := apply(statetimeline.NewPanelBuilder(), p, id, pos, ds, false).
			Legend(legendOn()).
			ShowValue(common.VisibilityModeAuto).
			MergeValues(true)
		return b.ColorScheme(thresholdColors)
	default:
		b := apply(timeseries.NewPanelBuilder(), p, id, pos, ds, false).
			Legend(legendOn()).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)).
			LineWidth(1).
			FillOpacity(10).
			ShowPoints(common.VisibilityModeNever).
			SpanNulls(common.BoolOrFloat64{Bool: ptr(false)})
		if len(p.thresholds) > 0 || len(p.overrides) > 0 {
			b.ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
		}
		if p.stacked {
			b.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
		}
		return b.ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdPaletteClassic))
	}
}

// grid places panels left to right, wrapping at Grafana's 24 columns.
type grid struct {
	x, y, rowH uint32
}

const gridWidth = 24

func (g *grid) place(w, h uint32) dashboard.GridPos {
	if g.x+w > gridWidth {
		g.newline()
	}
	pos := dashboard.GridPos{X: g.x, Y: g.y, W: w, H: h}
	g.x += w
	g.rowH = max(g.rowH, h)
	return pos
}

func (g *grid) newline() {
	g.y += g.rowH
	g.x, g.rowH = 0, 0
}

// row returns the position of a full-width row header on a new line.
func (g *grid) row() dashboard.GridPos {
	g.newline()
	pos := dashboard.GridPos{X: 0, Y: g.y, W: gridWidth, H: 1}
	g.y++
	return pos
}
