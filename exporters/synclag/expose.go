package synclag

import (
	"strconv"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/sla/catalog"
)

// render appends snap in the Prometheus text format, lag computed at now.
// Families carry the catalog's HELP and TYPE (a VictoriaMetrics Set writes
// neither unless metadata is switched on for the whole process), so the
// output passes promtool check metrics; a family without samples is left
// out.
func (r *Reader) render(b []byte, snap *snapshot, now time.Time) []byte {
	if len(snap.written) > 0 {
		b = appendHeader(b, catalog.SyncHeartbeatWritten)
		for _, w := range snap.written {
			b = append(b, catalog.SyncHeartbeatWritten.Name...)
			b = append(b, `{region="`...)
			b = appendLabelValue(b, w.region)
			b = append(b, `"} `...)
			b = strconv.AppendFloat(b, unixSeconds(w.ts), 'g', -1, 64)
			b = append(b, '\n')
		}
	}
	if len(snap.pairs) == 0 {
		return b
	}
	b = appendHeader(b, catalog.SyncLag)
	for _, p := range snap.pairs {
		b = appendPair(b, catalog.SyncLag.Name, p)
		b = strconv.AppendFloat(b, r.lag(now, p), 'g', -1, 64)
		b = append(b, '\n')
	}
	header := false
	for _, p := range snap.pairs {
		if p.applied.IsZero() {
			continue
		}
		if !header {
			b = appendHeader(b, catalog.SyncHeartbeatApplied)
			header = true
		}
		b = appendPair(b, catalog.SyncHeartbeatApplied.Name, p)
		b = strconv.AppendFloat(b, unixSeconds(p.applied), 'g', -1, 64)
		b = append(b, '\n')
	}
	return b
}

// appendPair appends `name{source_region="s",target_region="t"} `.
func appendPair(b []byte, name string, p pair) []byte {
	b = append(b, name...)
	b = append(b, `{source_region="`...)
	b = appendLabelValue(b, p.source)
	b = append(b, `",target_region="`...)
	b = appendLabelValue(b, p.target)
	return append(b, `"} `...)
}

// appendHeader appends a family's HELP and TYPE lines.
func appendHeader(b []byte, m catalog.Metric) []byte {
	b = append(b, "# HELP "...)
	b = append(b, m.Name...)
	b = append(b, ' ')
	b = append(b, helpEscaper.Replace(m.Help)...)
	b = append(b, "\n# TYPE "...)
	b = append(b, m.Name...)
	b = append(b, ' ')
	b = append(b, string(m.Type)...)
	return append(b, '\n')
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// appendLabelValue appends v escaped as the text format wants it: \\, \"
// and \n.
func appendLabelValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\"\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
