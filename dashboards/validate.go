package dashboards

import (
	"errors"
	"fmt"
	"slices"

	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// checkDashboard checks a built dashboard: a uid, panel ids unique within
// it, every data panel with at least one query, every query valid PromQL
// over catalog series (checkQuery) using only variables the dashboard
// defines, and every label_values variable over a catalog series and label.
// Errors name the dashboard, the panel and the query.
func checkDashboard(d dashboard.Dashboard, known catalogNames) error {
	title := deref(d.Title)
	where := fmt.Sprintf("dashboard %q", title)
	if d.Uid == nil || *d.Uid == "" {
		return fmt.Errorf("%s: no uid", where)
	}
	where = fmt.Sprintf("dashboard %q (uid %s)", title, *d.Uid)
	var errs []error

	var defined []string
	for _, v := range d.Templating.List {
		if v.Type == dashboard.VariableTypeQuery && v.Query != nil && v.Query.String != nil {
			q := *v.Query.String
			if err := checkVariables(q, defined); err != nil {
				errs = append(errs, fmt.Errorf("%s, variable %q: query %q: %w", where, v.Name, q, err))
			} else if err := checkLabelValues(q, known); err != nil {
				errs = append(errs, fmt.Errorf("%s, variable %q: query %q: %w", where, v.Name, q, err))
			}
		}
		defined = append(defined, v.Name)
	}

	seen := map[uint32]string{}
	claim := func(id uint32, name string) {
		if prev, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s: panels %q and %q share id %d", where, prev, name, id))
		}
		seen[id] = name
	}
	for _, pr := range d.Panels {
		if pr.RowPanel != nil {
			claim(pr.RowPanel.Id, deref(pr.RowPanel.Title))
			continue
		}
		if pr.Panel == nil {
			continue
		}
		p := pr.Panel
		name := deref(p.Title)
		if p.Id == nil {
			errs = append(errs, fmt.Errorf("%s, panel %q: no id", where, name))
			continue
		}
		claim(*p.Id, name)
		panelWhere := fmt.Sprintf("%s, panel %d %q", where, *p.Id, name)
		if len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("%s: no query", panelWhere))
		}
		for _, t := range p.Targets {
			expr, refID, ok := promExpr(t)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: query of type %s is not a Prometheus query", panelWhere, t.DataqueryType()))
				continue
			}
			if err := checkQuery(expr, known); err != nil {
				errs = append(errs, fmt.Errorf("%s: query %s %q: %w", panelWhere, refID, expr, err))
				continue
			}
			if err := checkVariables(expr, defined); err != nil {
				errs = append(errs, fmt.Errorf("%s: query %s %q: %w", panelWhere, refID, expr, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkVariables reports a variable expr uses that the dashboard does not
// define (before it, for a variable's own query).
func checkVariables(expr string, defined []string) error {
	for _, name := range variableRefs(expr) {
		if !slices.Contains(defined, name) {
			return fmt.Errorf("variable $%s is not defined by the dashboard (it defines %v)", name, defined)
		}
	}
	return nil
}

// promExpr returns the expression and refId of a Prometheus query.
func promExpr(q variants.Dataquery) (expr, refID string, ok bool) {
	switch pq := q.(type) {
	case prometheus.Dataquery:
		return pq.Expr, deref(pq.RefId), true
	case *prometheus.Dataquery:
		return pq.Expr, deref(pq.RefId), true
	}
	return "", "", false
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
