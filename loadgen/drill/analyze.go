package drill

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/carpoolsla/carpoolsla/services/gateway"
	"github.com/carpoolsla/carpoolsla/services/ids"
)

// Everything here is pure: the runner collects samples and orders, these
// functions turn them into the drill's moments and numbers.

// mark is a moment of the drill with what showed it.
type mark struct {
	at  time.Time
	by  string
	set bool
}

func (m mark) ptr() *time.Time {
	if !m.set {
		return nil
	}
	t := m.at
	return &t
}

// observing lists the gateways whose routing matters after the fault: every
// region's, except those of regions that are down (their gateways are gone
// with them).
func (p plan) observing(all []string) []string {
	if !p.down {
		return all
	}
	return p.survivors
}

// signalled says why a gateway's view of region f shows a problem, or "".
func signalled(rs gateway.RegionStatus) string {
	var why []string
	if !rs.ProbeHealthy {
		why = append(why, "probes failing")
	}
	if rs.Ejected {
		why = append(why, "ejected")
	}
	if rs.Breaker != gateway.BreakerClosed {
		why = append(why, "breaker "+rs.Breaker)
	}
	return strings.Join(why, ", ")
}

// outOfRotation reports whether gateway status st sends region f no new
// traffic: its breaker is open, it fails its probes, it is ejected, or its
// weight is 0 while another serving region has weight.
func outOfRotation(st gateway.Status, f string) bool {
	rs, ok := st.Regions[f]
	if !ok {
		return false
	}
	if rs.Breaker == gateway.BreakerOpen || !rs.ProbeHealthy || rs.Ejected {
		return true
	}
	if rs.Weight == 0 {
		for name, o := range st.Regions {
			if name != f && o.Weight > 0 && o.Breaker != gateway.BreakerOpen && o.ProbeHealthy && !o.Ejected {
				return true
			}
		}
	}
	return false
}

// detectMark is the first sample after t0 in which anything noticed a
// faulted region: a gateway's probes, ejection or breaker, the engine's
// breaker, or a replication pair's sync lag or RPO exposure above its RPO.
func detectMark(p plan, control []controlSample, lags []lagSample, t0 time.Time) mark {
	var best mark
	for _, s := range control {
		if !s.At.After(t0) || (best.set && !s.At.Before(best.at)) {
			continue
		}
		if by := controlSignal(p, s); by != "" {
			best = mark{s.At, by, true}
			break
		}
	}
	for _, s := range lags {
		if !s.At.After(t0) || (best.set && !s.At.Before(best.at)) {
			continue
		}
		if by := lagSignal(p, s); by != "" {
			best = mark{s.At, by, true}
			break
		}
	}
	return best
}

func controlSignal(p plan, s controlSample) string {
	for _, f := range p.faulted {
		for _, g := range slices.Sorted(maps.Keys(s.Gateways)) {
			if slices.Contains(p.faulted, g) && p.down {
				continue
			}
			rs, known := s.Gateways[g].Regions[f]
			if why := signalled(rs); known && why != "" {
				return fmt.Sprintf("gateway %s: %s %s", g, f, why)
			}
		}
		if e, ok := s.Engine[f]; ok {
			switch {
			case e.Breaker != "" && e.Breaker != gateway.BreakerClosed:
				return fmt.Sprintf("engine: %s breaker %s", f, e.Breaker)
			case p.tripP99 > 0 && e.LatencyP99 != nil && *e.LatencyP99 > p.tripP99:
				return fmt.Sprintf("engine: %s P99 %.3fs above the trip bar %gs", f, *e.LatencyP99, p.tripP99)
			case p.tripHealth > 0 && e.Health != nil && *e.Health < p.tripHealth:
				return fmt.Sprintf("engine: %s health %.1f below the trip bar %g", f, *e.Health, p.tripHealth)
			}
		}
	}
	return ""
}

func lagSignal(p plan, s lagSample) string {
	for _, k := range sortedPairs(s.SyncLag, s.Exposure) {
		if !p.involves(k) {
			continue
		}
		bar := p.pairRPO[k]
		if v, ok := s.SyncLag[k]; ok && v > bar {
			return fmt.Sprintf("sync lag %s %.2fs above its RPO %gs", k, v, bar)
		}
		if v, ok := s.Exposure[k]; ok && v > bar {
			return fmt.Sprintf("RPO exposure %s %.2fs above its RPO %gs", k, v, bar)
		}
	}
	return ""
}

// decideMark is when every faulted region was decided against: its breaker
// opened in the engine, or (without an engine's decision first) a gateway
// took it out of rotation on its own (probes or ejection). It is the latest
// of the faulted regions' first decisions.
func decideMark(p plan, control []controlSample, t0 time.Time) mark {
	var out mark
	for _, f := range p.faulted {
		var m mark
		for _, s := range control {
			if !s.At.After(t0) {
				continue
			}
			if e, ok := s.Engine[f]; ok && e.Breaker == gateway.BreakerOpen {
				m = mark{s.At, "engine opened " + f + "'s breaker", true}
				break
			}
			if g := firstGatewayOut(p, s, f); g != "" {
				m = mark{s.At, "gateway " + g + " took " + f + " out (" + signalled(s.Gateways[g].Regions[f]) + ")", true}
				break
			}
		}
		if !m.set {
			return mark{}
		}
		if !out.set || m.at.After(out.at) {
			out = m
		}
	}
	return out
}

// breakerMark is when the engine first had every faulted region's breaker open.
func breakerMark(p plan, control []controlSample, t0 time.Time) mark {
	for _, s := range control {
		if !s.At.After(t0) || s.Engine == nil {
			continue
		}
		all := true
		for _, f := range p.faulted {
			if s.Engine[f].Breaker != gateway.BreakerOpen {
				all = false
			}
		}
		if all {
			return mark{s.At, "engine breaker open for " + strings.Join(p.faulted, ", "), true}
		}
	}
	return mark{}
}

func firstGatewayOut(p plan, s controlSample, f string) string {
	for _, g := range slices.Sorted(maps.Keys(s.Gateways)) {
		if p.down && slices.Contains(p.faulted, g) {
			continue
		}
		if rs, known := s.Gateways[g].Regions[f]; known && (!rs.ProbeHealthy || rs.Ejected) {
			return g
		}
	}
	return ""
}

// shiftMark is the first sample after t0 in which every observing gateway
// sent no faulted region new traffic.
func shiftMark(p plan, control []controlSample, t0 time.Time, all []string) mark {
	obs := p.observing(all)
	for _, s := range control {
		if !s.At.After(t0) {
			continue
		}
		ok := true
		for _, g := range obs {
			st, read := s.Gateways[g]
			if !read {
				ok = false
				break
			}
			for _, f := range p.faulted {
				if !outOfRotation(st, f) {
					ok = false
				}
			}
		}
		if ok {
			return mark{s.At, fmt.Sprintf("gateways %s route nothing to %s", strings.Join(obs, ", "), strings.Join(p.faulted, ", ")), true}
		}
	}
	return mark{}
}

// recoveredMark is the first sample after t in which every gateway sees
// every faulted region healthy with its breaker not open, and the engine
// (when there is one) has no faulted region's breaker open.
func recoveredMark(p plan, control []controlSample, t time.Time, all []string) mark {
	for _, s := range control {
		if !s.At.After(t) {
			continue
		}
		ok := true
		for _, g := range all {
			st, read := s.Gateways[g]
			if !read {
				ok = false
				break
			}
			for _, f := range p.faulted {
				rs, known := st.Regions[f]
				if !known || !rs.ProbeHealthy || rs.Breaker == gateway.BreakerOpen {
					ok = false
				}
			}
		}
		for _, f := range p.faulted {
			if e, known := s.Engine[f]; known && e.Breaker == gateway.BreakerOpen {
				ok = false
			}
		}
		if ok {
			return mark{s.At, "every gateway sees " + strings.Join(p.faulted, ", ") + " healthy", true}
		}
	}
	return mark{}
}

// trafficBackMark is when every faulted region had served a ride again,
// sent after t: the later of their first such rides. Gateways hold an
// ejected region out for its ejection time even once its probes pass, so
// the region's health alone does not say that it serves again.
func trafficBackMark(p plan, orders []Order, t time.Time) mark {
	var out mark
	for _, f := range p.faulted {
		var m mark
		for _, o := range orders {
			if o.OK && o.ServedBy == f && o.Sent().After(t) && (!m.set || o.Done.Before(m.at)) {
				m = mark{o.Done, fmt.Sprintf("ride %d served by %s", o.RideID, f), true}
			}
		}
		if !m.set {
			return mark{}
		}
		if !out.set || m.at.After(out.at) {
			out = m
		}
	}
	return out
}

// caughtUpMark is the first scrape after t in which every pair involving a
// faulted region had its sync lag and RPO exposure within its RPO.
func caughtUpMark(p plan, lags []lagSample, t time.Time) mark {
	for _, s := range lags {
		if !s.At.After(t) {
			continue
		}
		seen, ok := 0, true
		for _, k := range sortedPairs(s.SyncLag, s.Exposure) {
			if !p.involves(k) {
				continue
			}
			seen++
			if s.SyncLag[k] > p.pairRPO[k] || s.Exposure[k] > p.pairRPO[k] {
				ok = false
			}
		}
		if ok && seen > 0 {
			return mark{s.At, "sync lag and RPO exposure of every pair within its RPO", true}
		}
	}
	return mark{}
}

// steady reports whether a control sample shows every gateway serving every
// region (and no engine breaker open), and if not, why.
func steady(s controlSample, all []string) (bool, string) {
	for _, g := range all {
		st, ok := s.Gateways[g]
		if !ok {
			return false, "gateway " + g + " did not answer"
		}
		for _, r := range all {
			rs, ok := st.Regions[r]
			if !ok {
				return false, "gateway " + g + " does not know region " + r
			}
			if why := signalled(rs); why != "" {
				return false, fmt.Sprintf("gateway %s: %s %s", g, r, why)
			}
		}
	}
	for r, e := range s.Engine {
		if e.Breaker == gateway.BreakerOpen {
			return false, "engine: " + r + " breaker open"
		}
	}
	return true, ""
}

// lagAt returns the replication lag of each pair from a faulted region to a
// surviving one (sync lag and RPO exposure), as scraped.
func lagAt(p plan, s lagSample) map[string]PairLag {
	out := map[string]PairLag{}
	for _, k := range sortedPairs(s.SyncLag, s.Exposure) {
		if !p.involves(k) {
			continue
		}
		pl := PairLag{RPOObjectiveSeconds: p.pairRPO[k]}
		if v, ok := s.SyncLag[k]; ok {
			pl.SyncLagSeconds = &v
		}
		if v, ok := s.Exposure[k]; ok {
			pl.ExposureSeconds = &v
		}
		out[k.String()] = pl
	}
	return out
}

// maxLag is the largest sync lag or exposure of a pair involving a faulted
// region over the samples in [from, to].
func maxLag(p plan, lags []lagSample, from, to time.Time) (float64, string) {
	best, at := 0.0, ""
	for _, s := range lags {
		if s.At.Before(from) || s.At.After(to) {
			continue
		}
		for _, k := range sortedPairs(s.SyncLag, s.Exposure) {
			if !p.involves(k) {
				continue
			}
			for _, v := range []float64{s.SyncLag[k], s.Exposure[k]} {
				if v > best {
					best, at = v, k.String()
				}
			}
		}
	}
	return best, at
}

// firstServedElsewhere is when the first ride of a rider homed in a faulted
// region, sent at or after t0, was acknowledged by a region that is not
// faulted.
func firstServedElsewhere(p plan, orders []Order, t0 time.Time) mark {
	var m mark
	for _, o := range orders {
		if !o.OK || o.Sent().Before(t0) || !slices.Contains(p.faulted, o.Home) || o.ServedBy == "" || slices.Contains(p.faulted, o.ServedBy) {
			continue
		}
		if !m.set || o.Done.Before(m.at) {
			m = mark{o.Done, fmt.Sprintf("ride %d of %s (home %s) served by %s", o.RideID, o.Rider, o.Home, o.ServedBy), true}
		}
	}
	return m
}

// loadStats summarises the orders.
func loadStats(orders []Order, t0 time.Time, hasT0 bool) LoadStats {
	var st LoadStats
	var lat []time.Duration
	var first, last time.Time
	for _, o := range orders {
		st.Scheduled++
		if first.IsZero() || o.Intended.Before(first) {
			first = o.Intended
		}
		if o.Intended.After(last) {
			last = o.Intended
		}
		st.Sent++
		if len(o.Attempts) > 1 {
			st.Fallbacks++
		}
		if len(o.Attempts) > 0 && !o.Attempts[0].ok() {
			st.FirstAttemptFailed++
		}
		if o.OK {
			st.Acked++
			lat = append(lat, o.Done.Sub(o.Intended))
		} else {
			st.Failed++
			if hasT0 && !o.Sent().Before(t0) {
				st.FailedAfterFault++
			}
			if len(st.FailureExamples) < 10 {
				st.FailureExamples = append(st.FailureExamples, describeFailure(o))
			}
		}
		if hasT0 && !o.Sent().Before(t0) {
			st.SentAfterFault++
		}
	}
	if st.Sent > 0 {
		st.SuccessRatio = float64(st.Acked) / float64(st.Sent)
		st.FirstAttemptSuccessRatio = float64(st.Sent-st.FirstAttemptFailed) / float64(st.Sent)
	}
	if span := last.Sub(first).Seconds(); span > 0 && st.Scheduled > 1 {
		st.AchievedRate = float64(st.Sent-1) / span
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(f float64) float64 { return lat[min(len(lat)-1, int(f*float64(len(lat))))].Seconds() }
		st.LatencyP50Seconds, st.LatencyP99Seconds, st.LatencyMaxSeconds = q(0.5), q(0.99), lat[len(lat)-1].Seconds()
	}
	return st
}

func describeFailure(o Order) string {
	var parts []string
	for _, a := range o.Attempts {
		what := a.Err
		if what == "" {
			what = fmt.Sprintf("status %d", a.Status)
		}
		parts = append(parts, fmt.Sprintf("via %s: %s", a.Gateway, what))
	}
	return fmt.Sprintf("%s at %s (home %s): %s", o.Key, o.Sent().Format(time.RFC3339Nano), o.Home, strings.Join(parts, "; "))
}

// checkIDs checks the acknowledged ride ids: no id acknowledged for two
// different rides, and per snowflake node, ids increasing in real time: when
// one ride's creation ended before another's began, on the same node, its id
// is smaller.
func checkIDs(orders []Order) IDReport {
	type created struct {
		id         int64
		key        string
		start, end time.Time
	}
	byNode := map[int][]created{}
	seen := map[int64]string{}
	var r IDReport
	for _, o := range orders {
		if !o.OK {
			continue
		}
		r.Checked++
		if k, dup := seen[o.RideID]; dup && k != o.Key {
			r.Duplicates++
			if len(r.Examples) < 10 {
				r.Examples = append(r.Examples, fmt.Sprintf("id %d acknowledged for %s and %s", o.RideID, k, o.Key))
			}
			continue
		}
		seen[o.RideID] = o.Key
		node := ids.ID(o.RideID).Node()
		byNode[node] = append(byNode[node], created{o.RideID, o.Key, o.Sent(), o.Done})
	}
	r.Nodes = len(byNode)
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		cs := byNode[node]
		byStart := slices.Clone(cs)
		slices.SortFunc(byStart, func(a, b created) int { return a.start.Compare(b.start) })
		byEnd := slices.Clone(cs)
		slices.SortFunc(byEnd, func(a, b created) int { return a.end.Compare(b.end) })
		j := 0
		var maxBefore created
		for _, c := range byStart {
			for j < len(byEnd) && byEnd[j].end.Before(c.start) {
				if byEnd[j].id > maxBefore.id {
					maxBefore = byEnd[j]
				}
				j++
			}
			if maxBefore.id != 0 && maxBefore.id >= c.id {
				r.OrderViolations++
				if len(r.Examples) < 10 {
					r.Examples = append(r.Examples, fmt.Sprintf("node %d: %s got id %d after %s had %d", node, c.key, c.id, maxBefore.key, maxBefore.id))
				}
			}
		}
	}
	return r
}

func sortedPairs(ms ...map[pairKey]float64) []pairKey {
	var out []pairKey
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.SortFunc(out, func(a, b pairKey) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Target, b.Target))
	})
	return out
}
