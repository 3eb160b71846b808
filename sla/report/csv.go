package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// CSVHeader is the header row of the CSV export.
var CSVHeader = []string{
	"row", "scope", "region", "window_from", "window_to", "service", "slo", "kind", "key",
	"objective_percent", "good", "total", "attainment_percent", "error_budget_used", "bad_minutes", "met",
	"downtime_minutes", "incidents", "credit_percent",
}

// WriteCSV writes the report as CSV: one row per SLO (row=slo), one per
// service (row=service) and the headline (row=sla: the composite, or the
// service for scope service). Numbers are written exactly as in the JSON
// (shortest round-trip form); an empty cell is a JSON null or a figure the
// row does not have.
func WriteCSV(w io.Writer, rep *SLAReport) error {
	cw := csv.NewWriter(w)
	base := func(row string) []string {
		return []string{row, string(rep.Scope), rep.Region, rep.Window.From.Format(time.RFC3339), rep.Window.To.Format(time.RFC3339)}
	}
	_ = cw.Write(CSVHeader)
	for _, s := range rep.SLOs {
		_ = cw.Write(append(base("slo"),
			s.Service, s.SLO, s.Kind, strconv.FormatBool(s.Key),
			num(s.ObjectivePercent), u64(s.Good), u64(s.Total), optNum(s.AttainmentPercent), optNum(s.ErrorBudgetUsed),
			strconv.Itoa(s.BadMinutes), strconv.FormatBool(s.Met), "", "", ""))
	}
	for _, s := range rep.Services {
		_ = cw.Write(append(base("service"),
			s.Service, "", "", "", "", "", "", optNum(s.AttainmentPercent), "",
			"", strconv.FormatBool(s.Met), strconv.Itoa(s.DowntimeMinutes), "", ""))
	}
	service := ""
	if rep.Scope == ScopeService {
		service = rep.Service
	}
	_ = cw.Write(append(base("sla"),
		service, "", "", "", optNum(rep.SLA.ObjectivePercent), "", "", optNum(rep.SLA.AttainmentPercent), "",
		"", strconv.FormatBool(rep.SLA.Met), num(rep.DowntimeMinutes), strconv.Itoa(rep.IncidentsTotal), num(rep.SLA.CreditPercent)))
	cw.Flush()
	return cw.Error()
}

func csvName(rep *SLAReport) string {
	name := "sla-" + string(rep.Scope)
	if rep.Service != "" {
		name += "-" + rep.Service
	}
	if rep.Region != "" {
		name += "-" + rep.Region
	}
	if rep.Window.Month != "" {
		return name + "-" + rep.Window.Month + ".csv"
	}
	return name + "-" + rep.Window.From.Format("20060102T150405Z") + "-" + rep.Window.To.Format("20060102T150405Z") + ".csv"
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
func u64(v uint64) string  { return strconv.FormatUint(v, 10) }
func optNum(f *float64) string {
	if f == nil {
		return ""
	}
	return num(*f)
}
