// Package dashboards generates the platform's Grafana dashboards and Grafana
// provisioning files from the SLA spec.
//
// The dashboards are built with grafana-foundation-sdk builders, never
// hand-written JSON. Every query names only series of the metric catalog
// (sla/catalog), and Generate checks each one at generation time: Grafana's
// variables are substituted, the query is parsed with Prometheus' own PromQL
// parser, and every series name and label matcher is looked up in the
// catalog. A dashboard therefore cannot ship a query that does not parse or
// that reads a series nobody produces.
package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Info summarises one generated dashboard.
type Info struct {
	UID, Title string
	// File is the dashboard's path relative to deploy/generated/grafana/.
	File string
	// Panels counts the panels that show data (row headers are not counted).
	Panels int
}

// Paths of the generated files, relative to deploy/generated/grafana/.
const (
	OverviewFile           = "dashboards/sla-overview.json"
	REDFile                = "dashboards/service-red.json"
	DRFile                 = "dashboards/dr-sync.json"
	LoadFile               = "dashboards/load.json"
	DatasourceProvisioning = "provisioning/datasources/carpoolsla.yaml"
	DashboardsProvisioning = "provisioning/dashboards/carpoolsla.yaml"
)

const (
	maxUIDLength         = 40 // Grafana rejects longer dashboard uids
	datasourceVariable   = "datasource"
	prometheusDatasource = "prometheus"
	regionVariable       = catalog.LabelRegion
	serviceVariable      = catalog.LabelService
	operationVariable    = catalog.LabelOperation
	allValue             = ".*"
	productTag           = "carpoolsla"
	generatedTag         = "generated"
	defaultRefresh       = "30s"
	defaultTimeFrom      = "now-6h"
	defaultTimeTo        = "now"
)

// section is a row header and the panels under it.
type section struct {
	title  string
	panels []panel
}

// board describes one dashboard before it is built.
type board struct {
	file, uidSuffix, title, desc string
	timeFrom, refresh            string
	variables                    []cog.Builder[dashboard.VariableModel]
	sections                     []section
}

// boards lists the dashboards in the order Describe reports them.
func boards(s *spec.Spec) []board {
	return []board{overview(s), serviceRED(s), drSync(s), load(s)}
}

func (b board) uid(s *spec.Spec) string { return s.Dashboards.UIDPrefix + "-" + b.uidSuffix }

// built is a dashboard built and checked.
type built struct {
	info Info
	dash dashboard.Dashboard
}

// buildAll builds and checks every dashboard of s.
func buildAll(s *spec.Spec) ([]built, error) {
	if s == nil {
		return nil, errors.New("generating dashboards: no spec")
	}
	known := knownSeries(s)
	all := boards(s)
	var out []built
	var errs []error
	for _, b := range all {
		d, panels, err := b.build(s, all)
		if err != nil {
			errs = append(errs, fmt.Errorf("building dashboard %q: %w", b.title, err))
			continue
		}
		if err := checkDashboard(d, known); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, built{info: Info{UID: *d.Uid, Title: *d.Title, File: b.file, Panels: panels}, dash: d})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Generate returns the Grafana dashboards and provisioning files for s, keyed
// by path relative to deploy/generated/grafana/. It fails, naming the
// dashboard, panel and query, when a query does not parse as PromQL or reads
// a series or label the catalog does not have.
func Generate(s *spec.Spec) (map[string][]byte, error) {
	bs, err := buildAll(s)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(bs)+2)
	for _, b := range bs {
		data, err := encodeJSON(b.dash)
		if err != nil {
			return nil, fmt.Errorf("encoding dashboard %q: %w", b.info.Title, err)
		}
		out[b.info.File] = data
	}
	ds, err := datasourceFile(s)
	if err != nil {
		return nil, err
	}
	out[DatasourceProvisioning] = ds
	prov, err := dashboardProviderFile(s)
	if err != nil {
		return nil, err
	}
	out[DashboardsProvisioning] = prov
	return out, nil
}

// Describe summarises the dashboards Generate writes for s, in a fixed
// order: overview, service RED, DR and sync, load.
func Describe(s *spec.Spec) ([]Info, error) {
	bs, err := buildAll(s)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(bs))
	for i, b := range bs {
		out[i] = b.info
	}
	return out, nil
}

// encodeJSON writes v as indented JSON, leaving <, > and & as they are so
// that PromQL stays readable.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return unescapeHTML(buf.Bytes()), nil
}

// unescapeHTML turns the \u003c, \u003e and \u0026 escapes back into <, >
// and &. The SDK's MarshalJSON methods call json.Marshal, which escapes
// them whatever the outer Encoder says; the result is the same JSON value.
// Outside strings JSON has no backslash, and inside them every backslash
// starts an escape, so reading escapes pairwise from the start is exact.
func unescapeHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c":
				out, i = append(out, '<'), i+5
				continue
			case "003e":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		out, i = append(out, b[i], b[i+1]), i+1
	}
	return out
}

// specName is how generated files name the spec they come from.
func specName(s *spec.Spec) string {
	if s.File == "" {
		return "the SLA spec"
	}
	return s.File
}

func generatedMarker(s *spec.Spec) string {
	return fmt.Sprintf("Generated by `carpoolsla generate` from %s; do not edit.", specName(s))
}

// datasourceRef points panels and queries at the datasource variable.
func datasourceRef() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr(prometheusDatasource), Uid: ptr("${" + datasourceVariable + "}")}
}

// build assembles b with the SDK. It returns the number of data panels.
func (b board) build(s *spec.Spec, all []board) (dashboard.Dashboard, int, error) {
	uid := b.uid(s)
	if len(uid) > maxUIDLength {
		return dashboard.Dashboard{}, 0, fmt.Errorf("uid %q is longer than Grafana's %d characters; shorten dashboards.uidPrefix in the spec", uid, maxUIDLength)
	}
	timeFrom := b.timeFrom
	if timeFrom == "" {
		timeFrom = defaultTimeFrom
	}
	refresh := b.refresh
	if refresh == "" {
		refresh = defaultRefresh
	}
	db := dashboard.NewDashboardBuilder(b.title).
		Uid(uid).
		Description(generatedMarker(s)+" "+b.desc).
		Tags([]string{productTag, generatedTag}).
		Timezone(common.TimeZoneBrowser).
		Time(timeFrom, defaultTimeTo).
		Refresh(refresh).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Variables(b.variables).
		Links(dashboardLinks(s, b, all))

	ds := datasourceRef()
	var g grid
	var id uint32
	panels := 0
	for _, sec := range b.sections {
		id++
		db.WithRow(dashboard.NewRowBuilder(sec.title).Id(id).GridPos(g.row()))
		for _, p := range sec.panels {
			id++
			w, h := p.w, p.h
			if w == 0 {
				w = 12
			}
			if h == 0 {
				h = 8
			}
			db.WithPanel(p.build(id, g.place(w, h), ds))
			panels++
		}
	}
	d, err := db.Build()
	if err != nil {
		return dashboard.Dashboard{}, 0, err
	}
	showLinks(&d)
	return d, panels, nil
}

// showLinks clears the placement the SDK gives every link by default
// ("inControlsMenu"), which Grafana 12 reads as "hide this link in the
// controls dropdown": the links between the dashboards and to the runbooks
// belong in plain sight.
func showLinks(d *dashboard.Dashboard) {
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue
		}
		for i := range p.Panel.Links {
			p.Panel.Links[i].Placement = nil
		}
	}
}

// dashboardLinks links b to the other dashboards (keeping the time range and
// variables) and to the runbooks.
func dashboardLinks(s *spec.Spec, b board, all []board) []cog.Builder[dashboard.DashboardLink] {
	var links []cog.Builder[dashboard.DashboardLink]
	for _, o := range all {
		if o.uidSuffix == b.uidSuffix {
			continue
		}
		links = append(links, dashboard.NewDashboardLinkBuilder(o.title).
			Type(dashboard.DashboardLinkTypeLink).
			Url("/d/"+o.uid(s)).
			Icon("dashboard").
			Tooltip("Open the "+o.title+" dashboard").
			IncludeVars(true).
			KeepTime(true))
	}
	links = append(links, dashboard.NewDashboardLinkBuilder("Runbooks").
		Type(dashboard.DashboardLinkTypeLink).
		Url(strings.TrimRight(s.Alerting.RunbookBaseURL, "/")).
		Icon("doc").
		Tooltip("One runbook per generated alert").
		TargetBlank(true))
	return links
}

// runbook links a panel to the runbook of an alert it explains.
func runbook(s *spec.Spec, a catalog.Alert) link {
	return link{
		title:   "Runbook: " + a.Name,
		url:     strings.TrimRight(s.Alerting.RunbookBaseURL, "/") + "/" + a.Name + ".md",
		tooltip: string(a.Tier) + ": " + a.Summary,
	}
}

// datasourceVar picks the Prometheus datasource; its default is the spec's.
func datasourceVar(s *spec.Spec) cog.Builder[dashboard.VariableModel] {
	name := s.Dashboards.Datasource
	return dashboard.NewDatasourceVariableBuilder(datasourceVariable).
		Label("Data source").
		Type(prometheusDatasource).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: ptr(name)},
			Value: dashboard.StringOrArrayOfString{String: ptr(name)},
		})
}

// labelValuesVar is a multi-value query variable over label_values(selector,
// label), with an All option matching every value.
func labelValuesVar(name, label, selector, labelName string) cog.Builder[dashboard.VariableModel] {
	q := fmt.Sprintf("label_values(%s, %s)", selector, labelName)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasourceRef()).
		Query(dashboard.StringOrMap{String: ptr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortNaturalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(allValue).
		Current(allOption())
}

// regionVar lists the regions that metric reports.
func regionVar(metric string) cog.Builder[dashboard.VariableModel] {
	return labelValuesVar(regionVariable, "Region", metric, catalog.LabelRegion)
}

// serviceVar lists the spec's services.
func serviceVar(s *spec.Spec) cog.Builder[dashboard.VariableModel] {
	names := make([]string, len(s.Services))
	for i, svc := range s.Services {
		names[i] = svc.Name
	}
	values := strings.Join(names, ",")
	return dashboard.NewCustomVariableBuilder(serviceVariable).
		Label("Service").
		Values(dashboard.StringOrMap{String: ptr(values)}).
		Multi(true).
		IncludeAll(true).
		AllValue(allValue).
		Current(allOption())
}

func allOption() dashboard.VariableOption {
	return dashboard.VariableOption{
		Text:  dashboard.StringOrArrayOfString{String: ptr("All")},
		Value: dashboard.StringOrArrayOfString{String: ptr("$__all")},
	}
}
