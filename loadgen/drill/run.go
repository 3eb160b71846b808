package drill

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/carpoolsla/carpoolsla/loadgen"
	"github.com/carpoolsla/carpoolsla/services/faults"
	"github.com/carpoolsla/carpoolsla/sla/spec"
)

// Runner runs one drill. Build it with New, run it with Run.
type Runner struct {
	cfg  Config
	plan plan
	all  []string // every region, spec order
}

// New checks cfg (filling in its defaults) and resolves its scenario
// against the spec.
func New(cfg Config) (*Runner, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring the drill: %w", err)
	}
	p, err := newPlan(&cfg)
	if err != nil {
		return nil, fmt.Errorf("configuring the drill: %w", err)
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = time.Duration(p.objectives.RTOSeconds*float64(time.Second)) + 10*time.Second
	}
	return &Runner{cfg: cfg, plan: p, all: cfg.Spec.RegionNames()}, nil
}

// Faulted lists the regions the drill's fault hits.
func (r *Runner) Faulted() []string { return slices.Clone(r.plan.faulted) }

// Objectives returns what the drill must meet.
func (r *Runner) Objectives() Objectives { return r.plan.objectives }

func (r *Runner) now() time.Time { return r.cfg.Now() }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitFor polls cond every Poll until it holds (true) or until deadline
// (false). It returns ctx's error when ctx ends first.
func (r *Runner) waitFor(ctx context.Context, deadline time.Time, cond func() bool) (bool, error) {
	for {
		if cond() {
			return true, nil
		}
		if !r.now().Before(deadline) {
			return false, nil
		}
		if err := sleep(ctx, min(r.cfg.Poll, time.Until(deadline)+time.Millisecond)); err != nil {
			return false, err
		}
	}
}

// Run runs the drill: load, baseline, fault, measurement, clearing,
// recovery. The returned error is for a drill that could not be carried
// out (a deployment not reachable or not steady, a fault the admin API
// refused); objectives that were missed are in the Result (Passed false)
// with a nil error. A fault the drill injected is cleared whatever
// happens, ctx's end included.
func (r *Runner) Run(ctx context.Context) (Result, error) {
	cfg, p := r.cfg, r.plan
	res := Result{
		EventID: newEventID(), Scenario: p.scenario, Region: strings.Join(p.faulted, ","),
		Faulted: p.faulted, Survivors: p.survivors, Fault: p.fault, External: cfg.External, Engine: cfg.Target.Engine != "",
		Objectives: p.objectives, Measurable: true,
		RTOSeconds: NotMeasured, RPOSeconds: NotMeasured, DetectSeconds: NotMeasured, DecideSeconds: NotMeasured,
		ShiftSeconds: NotMeasured, CatchupSeconds: NotMeasured, SuccessRatio: NotMeasured,
	}
	res.Timeline.Start = r.now()
	res.Load.RateTarget = cfg.Rate
	if p.needsEngine && cfg.Target.Engine == "" {
		res.Measurable = false
		res.Reason = fmt.Sprintf("%s must trip the SLA engine's breaker, and no engine status URL was given (--engine): the drill was not run rather than measured without the breaker.", p.scenario)
		res.TS, res.Timeline.End = res.Timeline.Start, res.Timeline.Start
		res.Checks = []Check{{Name: "measurable", Objective: "an engine to trip the breaker", Measured: "no engine", Passed: false}}
		r.record(ctx, &res)
		return res, nil
	}

	// Preflight: every faulted region's fault API answers and has no fault.
	clients := map[string]*FaultsClient{}
	before := map[string]faults.State{}
	if !cfg.External {
		for _, f := range p.faulted {
			c := &FaultsClient{BaseURL: cfg.Target.Regions[f].Faults, Token: cfg.Target.Token, HTTP: cfg.HTTP}
			s, err := c.State(ctx)
			if err != nil {
				return res, fmt.Errorf("before the drill: %w", err)
			}
			if !zeroState(s) {
				return res, fmt.Errorf("before the drill: region %s already has faults injected (%+v); clear them first (carpoolsla fault clear --region %s)", f, s, f)
			}
			clients[f], before[f] = c, s
		}
	}

	pollCtx, stopPoll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPoll()
	po := &poller{http: cfg.HTTP, token: cfg.Target.Token, engine: cfg.Target.Engine, poll: cfg.Poll, mpoll: cfg.MetricsPoll,
		now: cfg.Now, gateways: map[string]string{}, metrics: map[string]string{}, errs: map[string]string{}}
	for _, n := range r.all {
		po.gateways[n], po.metrics[n] = cfg.Target.Regions[n].Gateway, cfg.Target.Regions[n].Metrics
	}
	var bg sync.WaitGroup
	bg.Go(func() { po.run(pollCtx) })

	ld, err := newLoad(loadConfig{Gateways: po.gateways, Regions: r.all, Rate: cfg.Rate, Units: cfg.Units, RidersPerHome: cfg.RidersPerHome,
		Fallbacks: cfg.Fallbacks, RequestTimeout: cfg.RequestTimeout, MaxInFlight: cfg.MaxInFlight, Point: cfg.Point,
		RunID: cfg.RunID, HTTP: cfg.HTTP, Now: cfg.Now, Duration: r.longest()})
	if err != nil {
		return res, err
	}
	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoad()
	bg.Go(func() { ld.run(loadCtx) })
	defer func() { stopLoad(); stopPoll(); bg.Wait() }() // after restore (deferred later, run first)
	cfg.Log.Info("drill started", "scenario", p.scenario, "faulted", p.faulted, "rate", cfg.Rate)

	// A steady baseline: every gateway serving every region, and Baseline
	// without a failed ride.
	windowStart := r.now()
	why := "no gateway status yet"
	steadyOK, err := r.waitFor(ctx, windowStart.Add(cfg.BaselineTimeout), func() bool {
		s, ok := po.latest()
		if !ok {
			return false
		}
		var good bool
		if good, why = steady(s, r.all); !good {
			windowStart = r.now()
			return false
		}
		for _, o := range ld.orders() {
			if !o.OK && o.Done.After(windowStart) {
				windowStart, why = o.Done, "ride failed: "+describeFailure(o)
			}
		}
		return r.now().Sub(windowStart) >= cfg.Baseline
	})
	if err != nil {
		return res, err
	}
	if !steadyOK {
		errs := po.lastErrors()
		return res, fmt.Errorf("the deployment was not steady for %s within %s before the fault (last: %s; poll errors: %v); check the URLs and the token, and that every region is healthy", cfg.Baseline, cfg.BaselineTimeout, why, errs)
	}
	at := r.now()
	res.Timeline.Baseline = &at
	cfg.Log.Info("steady baseline", "orders", len(ld.orders()))

	// T0.
	scrapeCtx, cancelScrape := context.WithTimeout(ctx, 2*time.Second)
	if ls, ok := po.scrape(scrapeCtx); ok {
		res.RPO.LagAtFault = lagAt(p, ls)
	}
	cancelScrape()
	var t0 time.Time
	cleared := cfg.External
	restore := func() {
		if cleared {
			return
		}
		cleared = true
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for f, c := range clients {
			wg.Go(func() {
				if _, err := c.Put(rctx, before[f]); err != nil {
					cfg.Log.Error("clearing the drill's fault failed; clear it by hand", "region", f, "err", err)
				}
			})
		}
		wg.Wait()
		at := r.now()
		res.Timeline.Cleared = &at
	}
	defer restore()
	if !cfg.External {
		t0 = r.now()
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for _, f := range p.faulted {
			wg.Go(func() {
				if _, err := clients[f].Inject(ctx, p.fault); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("injecting %s in %s: %w", p.fault, f, err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		acked := r.now()
		res.Timeline.T0, res.Timeline.T0Acked, res.Timeline.T0Source = &t0, &acked, "injected"
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
		cfg.Log.Info("fault injected", "fault", p.fault.String(), "regions", p.faulted)
	} else {
		var src string
		t0, src, err = r.externalT0(ctx, po, ld, at)
		if err != nil {
			return res, err
		}
		res.Timeline.T0, res.Timeline.T0Source = &t0, src
		cfg.Log.Info("external fault found", "t0", t0, "by", src)
	}
	res.TS = t0

	// Measure while the fault holds.
	deadline := t0.Add(cfg.MaxWait)
	if p.failover {
		if _, err := r.waitFor(ctx, deadline, func() bool {
			control, _ := po.samples()
			orders := ld.orders()
			done := shiftMark(p, control, t0, r.all).set && firstServedElsewhere(p, orders, t0).set
			if p.needsEngine {
				done = done && breakerMark(p, control, t0).set
			}
			return done
		}); err != nil {
			return res, err
		}
		if err := sleep(ctx, cfg.Settle); err != nil {
			return res, err
		}
		ref := r.now()
		if p.down {
			ref = t0 // the regions died at T0: everything since the oldest missing write is lost
		}
		res.RPO, _ = r.checkRPO(ctx, res.RPO, ackedBefore(ld.orders(), r.now()), p.survivors, ref, cfg.Settle)
	} else {
		if _, err := r.waitFor(ctx, deadline, func() bool {
			control, lags := po.samples()
			return detectMark(p, control, lags, t0).set
		}); err != nil {
			return res, err
		}
	}
	if !cfg.External {
		if err := sleep(ctx, time.Until(t0.Add(cfg.Hold))); err != nil {
			return res, err
		}
	}

	if !p.failover {
		// What the fault held back: acknowledged rides some region lacked
		// just before it was cleared (one look, no settling).
		before := r.now()
		held, _ := r.lookup(ctx, ackedBefore(ld.orders(), before), r.all, 0)
		res.RPO.HeldBack, res.RPO.HeldBackWindowSeconds = counts(held), window(held, before)
	}

	// Clear, and wait for recovery.
	restore()
	recoverFrom := r.now()
	if res.Timeline.Cleared != nil {
		recoverFrom = *res.Timeline.Cleared
	}
	if cfg.External {
		// Someone else ends the fault: recovery counts from when the
		// faulted regions answer their health checks again.
		gone, err := r.waitFor(ctx, recoverFrom.Add(cfg.RecoverTimeout), func() bool { return r.healthChecksPass(ctx) })
		if err != nil {
			return res, err
		}
		if gone {
			recoverFrom = r.now()
			res.Timeline.FaultGone = &recoverFrom
		}
	}
	if _, err := r.waitFor(ctx, recoverFrom.Add(cfg.RecoverTimeout), func() bool {
		control, lags := po.samples()
		ok := recoveredMark(p, control, recoverFrom, r.all).set && trafficBackMark(p, ld.orders(), recoverFrom).set
		if !p.failover {
			ok = ok && caughtUpMark(p, lags, recoverFrom).set
		}
		return ok
	}); err != nil {
		return res, err
	}
	if !p.failover {
		// Replication caught up when every ride acknowledged before the
		// clearing is in every region (the lag metrics alone can be fooled:
		// a skewed clock skews the heartbeats they are computed from). Rides
		// still missing when the recovery bound runs out are lost.
		var at time.Time
		res.RPO, at = r.checkRPO(ctx, res.RPO, ackedBefore(ld.orders(), recoverFrom), r.all, time.Time{}, time.Until(recoverFrom.Add(cfg.RecoverTimeout)))
		if !at.IsZero() {
			res.Timeline.Replicated = &at
		}
	}
	res.RPO = r.checkConvergence(ctx, res.RPO, ld.orders())

	// Tail, then stop.
	if err := sleep(ctx, cfg.Tail); err != nil {
		return res, err
	}
	stopLoad()
	waitBounded(ld, cfg.RequestTimeout*time.Duration(cfg.Fallbacks+1)+time.Second)
	stopPoll()
	bg.Wait()
	res.Timeline.End = r.now()

	control, lags := po.samples()
	r.analyze(&res, control, lags, ld.orders(), t0, recoverFrom)
	if sum := ld.summary(); sum != nil {
		res.Load.Scheduled, res.Load.Dropped, res.Load.AchievedRate = int(sum.Scheduled), int(sum.Dropped), sum.AchievedRate
	}
	r.finishChecks(&res)
	r.record(ctx, &res)
	cfg.Log.Info("drill finished", "passed", res.Passed, "failed_checks", res.Failed())
	return res, nil
}

// longest bounds the whole drill, every wait at its bound: the load's
// schedule is that long (the drill stops it when it is done).
func (r *Runner) longest() time.Duration {
	c := r.cfg
	d := c.BaselineTimeout + c.MaxWait + c.Hold + 2*c.Settle + 2*c.RecoverTimeout + max(5*c.Settle, 10*time.Second) + c.Tail + time.Minute
	if c.External {
		d += c.ExternalWait
	}
	return min(d, loadgen.MaxDuration)
}

// waitBounded waits for the load's in-flight rides, at most d.
func waitBounded(ld *load, d time.Duration) {
	done := make(chan struct{})
	go func() { ld.wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

func zeroState(s faults.State) bool {
	return !s.Down && !s.ReplicationStalled && s.ClockSkew == 0 && !s.ConsumerPaused && len(s.Services) == 0
}

// externalT0 finds the time of a fault injected outside the drill: FaultAt
// when given (waiting for it to come), else the first failed health check
// of a faulted region's API, the first failed ride attempt, or the first
// control-plane or replication signal, whichever comes first.
func (r *Runner) externalT0(ctx context.Context, po *poller, ld *load, after time.Time) (time.Time, string, error) {
	cfg, p := r.cfg, r.plan
	if !cfg.FaultAt.IsZero() {
		if err := sleep(ctx, time.Until(cfg.FaultAt)); err != nil {
			return time.Time{}, "", err
		}
		return cfg.FaultAt, "fault-at", nil
	}
	var t0 time.Time
	var src string
	note := func(t time.Time, s string) {
		if t0.IsZero() || t.Before(t0) {
			t0, src = t, s
		}
	}
	hc := &http.Client{Transport: cfg.HTTP.Transport, Timeout: time.Second}
	found, err := r.waitFor(ctx, after.Add(cfg.ExternalWait), func() bool {
		for _, f := range p.faulted {
			start := r.now()
			resp, err := hc.Head(strings.TrimSuffix(cfg.Target.Regions[f].API, "/") + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode >= 500 {
				note(start, "first failed health check of "+f)
			}
		}
		for _, o := range ld.orders() {
			if len(o.Attempts) > 0 && !o.Attempts[0].ok() && o.Sent().After(after) {
				note(o.Attempts[0].Start, "first failed ride attempt ("+o.Key+")")
			}
		}
		control, lags := po.samples()
		if m := detectMark(p, control, lags, after); m.set {
			note(m.at, "first signal: "+m.by)
		}
		return !t0.IsZero()
	})
	if err != nil {
		return time.Time{}, "", err
	}
	if !found {
		return time.Time{}, "", fmt.Errorf("no fault showed in %s within %s of the baseline; start the Chaos Mesh experiment (deploy/k8s/chaos) or give --fault-at", strings.Join(p.faulted, ", "), cfg.ExternalWait)
	}
	return t0, src, nil
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ackedBefore returns the orders acknowledged before t.
func ackedBefore(orders []Order, t time.Time) []Order {
	var out []Order
	for _, o := range orders {
		if o.OK && o.Done.Before(t) {
			out = append(out, o)
		}
	}
	return out
}

func counts(missing map[string][]Order) map[string]int {
	if len(missing) == 0 {
		return nil
	}
	out := map[string]int{}
	for reg, os := range missing {
		out[reg] = len(os)
	}
	return out
}

// window is the span of the missing rides' acknowledgements up to ref (or
// up to the newest of them, when ref is zero or earlier): the writes a loss
// at ref would take.
func window(missing map[string][]Order, ref time.Time) float64 {
	var first, last time.Time
	for _, os := range missing {
		for _, o := range os {
			if first.IsZero() || o.Done.Before(first) {
				first = o.Done
			}
			if o.Done.After(last) {
				last = o.Done
			}
		}
	}
	if first.IsZero() {
		return 0
	}
	if last.Before(ref) {
		last = ref
	}
	return last.Sub(first).Seconds()
}

// healthChecksPass reports whether every faulted region's API answers
// HEAD /healthz with a 2xx within a second.
func (r *Runner) healthChecksPass(ctx context.Context) bool {
	for _, f := range r.plan.faulted {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, strings.TrimSuffix(r.cfg.Target.Regions[f].API, "/")+"/healthz", nil)
		if err != nil {
			cancel()
			return false
		}
		resp, err := r.cfg.HTTP.Do(req)
		cancel()
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return false
		}
	}
	return true
}

// checkRPO looks the acknowledged rides up in each of regions, asking again
// for those not there yet until settle has passed. It returns the report
// with what was still missing, and when every region had every ride (zero
// if never).
func (r *Runner) checkRPO(ctx context.Context, rep RPOReport, acked []Order, regions []string, ref time.Time, settle time.Duration) (RPOReport, time.Time) {
	start := r.now()
	rep.Checked, rep.CheckedIn, rep.CheckedAt = len(acked), regions, start
	missing, unverified, done := r.lookupUntil(ctx, acked, regions, settle)
	rep.Unverified = unverified
	rep.Missing = counts(missing)
	rep.MissingExamples = nil
	for _, reg := range slices.Sorted(maps.Keys(missing)) {
		for _, o := range missing[reg] {
			if len(rep.MissingExamples) < 10 {
				rep.MissingExamples = append(rep.MissingExamples, fmt.Sprintf("ride %d (origin %s, acknowledged %s) missing in %s", o.RideID, o.Origin, o.Done.Format(time.RFC3339Nano), reg))
			}
		}
	}
	rep.LossWindowSeconds = window(missing, ref)
	return rep, done
}

// checkConvergence looks every acknowledged ride up in every region after
// recovery.
func (r *Runner) checkConvergence(ctx context.Context, rep RPOReport, orders []Order) RPOReport {
	acked := ackedBefore(orders, r.now())
	missing, _, _ := r.lookupUntil(ctx, acked, r.all, max(5*r.cfg.Settle, 10*time.Second))
	rep.ConvergenceChecked = true
	for reg, os := range missing {
		if rep.NotConverged == nil {
			rep.NotConverged = map[string]int{}
		}
		rep.NotConverged[reg] = len(os)
	}
	return rep
}

// lookup finds, per region, the orders whose ride its API does not have
// after settle: each missing ride is asked again until then. Rides whose
// last lookup got neither 200 nor 404 are counted as unverified, and listed
// as missing.
func (r *Runner) lookup(ctx context.Context, orders []Order, regions []string, settle time.Duration) (map[string][]Order, int) {
	missing, unverified, _ := r.lookupUntil(ctx, orders, regions, settle)
	return missing, unverified
}

// lookupUntil is lookup that also returns when the last region was found
// to have every ride (zero when some were still missing).
func (r *Runner) lookupUntil(ctx context.Context, orders []Order, regions []string, settle time.Duration) (map[string][]Order, int, time.Time) {
	deadline := r.now().Add(settle)
	missing := map[string][]Order{}
	unverified := 0
	for _, reg := range regions {
		pending := orders
		var lastErr map[int64]bool
		for {
			var still []Order
			lastErr = map[int64]bool{}
			var mu sync.Mutex
			work := make(chan Order)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for o := range work {
						found, err := r.hasRide(ctx, reg, o.RideID)
						if !found {
							mu.Lock()
							still = append(still, o)
							if err != nil {
								lastErr[o.RideID] = true
							}
							mu.Unlock()
						}
					}
				})
			}
			for _, o := range pending {
				work <- o
			}
			close(work)
			wg.Wait()
			pending = still
			if len(pending) == 0 || !r.now().Before(deadline) || ctx.Err() != nil {
				break
			}
			if sleep(ctx, min(200*time.Millisecond, time.Until(deadline))) != nil {
				break
			}
		}
		if len(pending) > 0 {
			slices.SortFunc(pending, func(a, b Order) int { return a.Done.Compare(b.Done) })
			missing[reg] = pending
			unverified += len(lastErr)
		}
	}
	var done time.Time
	if len(missing) == 0 {
		done = r.now()
	}
	return missing, unverified, done
}

// hasRide reports whether region's API has the ride: found on a 200, not
// found on a 404, not found with an error otherwise.
func (r *Runner) hasRide(ctx context.Context, region string, id int64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	u := fmt.Sprintf("%s/v1/rides/%d", strings.TrimSuffix(r.cfg.Target.Regions[region].API, "/"), id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
}

// analyze computes the phases and checks from what was collected.
func (r *Runner) analyze(res *Result, control []controlSample, lags []lagSample, orders []Order, t0, recoverFrom time.Time) {
	cfg, p := r.cfg, r.plan
	tl := &res.Timeline
	det := detectMark(p, control, lags, t0)
	dec := decideMark(p, control, t0)
	brk := breakerMark(p, control, t0)
	sh := shiftMark(p, control, t0, r.all)
	fse := firstServedElsewhere(p, orders, t0)
	healthy := recoveredMark(p, control, recoverFrom, r.all)
	caught := caughtUpMark(p, lags, recoverFrom)
	tl.Detect, tl.DetectedBy = det.ptr(), det.by
	tl.Decide, tl.DecidedBy = dec.ptr(), dec.by
	tl.BreakerOpen, tl.Shift = brk.ptr(), sh.ptr()
	if p.failover {
		tl.FirstServedElsewhere, tl.ServedElsewhereBy = fse.ptr(), fse.by
	}
	tl.Healthy, tl.CaughtUp = healthy.ptr(), caught.ptr()
	back := trafficBackMark(p, orders, recoverFrom)
	tl.TrafficBack = back.ptr()
	secs := func(from time.Time, to mark) float64 {
		if !to.set {
			return NotMeasured
		}
		return max(0, to.at.Sub(from).Seconds())
	}
	if det.set {
		res.DetectSeconds = secs(t0, det)
		res.DecideSeconds = secs(det.at, dec)
	}
	if sh.set {
		from := t0
		if dec.set {
			from = dec.at
		} else if det.set {
			from = det.at
		}
		res.ShiftSeconds = secs(from, sh)
	}
	if p.failover {
		if sh.set && fse.set {
			end, by := sh.at, "the shift ("+sh.by+")"
			if fse.at.After(end) {
				end, by = fse.at, "the first ride served elsewhere ("+fse.by+")"
			}
			tl.Recovered, tl.RecoveredBy = &end, by
			res.RTOSeconds = end.Sub(t0).Seconds()
		}
	} else if caught.set && tl.Replicated != nil {
		from := recoverFrom
		if cfg.External {
			from = t0
			res.Notes = append(res.Notes, "external mode does not know when the fault ended: the catch-up is measured from T0")
		}
		end := caught.at
		if tl.Replicated.After(end) {
			end = *tl.Replicated
		}
		res.CatchupSeconds = end.Sub(from).Seconds()
		res.RTOSeconds = res.CatchupSeconds
	}
	faultEnd := recoverFrom
	if tl.Cleared == nil && tl.FaultGone == nil {
		faultEnd = res.Timeline.End
	}
	res.RPO.MaxLagSeconds, res.RPO.MaxLagPair = maxLag(p, lags, t0, faultEnd)
	res.Load = loadStats(orders, t0, true)
	res.Load.RateTarget = cfg.Rate
	res.SuccessRatio = res.Load.SuccessRatio
	res.IDs = checkIDs(orders)
	missing := 0
	for _, n := range res.RPO.Missing {
		missing += n
	}
	res.RPOSeconds = res.RPO.LossWindowSeconds

	o := p.objectives
	check := func(name, objective, measured string, passed bool, detail string) {
		res.Checks = append(res.Checks, Check{name, objective, measured, passed, detail})
	}
	fmtS := func(v float64) string {
		if v < 0 {
			return "not reached"
		}
		return fmt.Sprintf("%.3fs", v)
	}
	if p.failover {
		detail := fmt.Sprintf("T0 to every gateway routing around %s and its riders served elsewhere; measured to one poll (%s)", strings.Join(p.faulted, ", "), cfg.Poll)
		if res.RTOSeconds < 0 {
			detail = fmt.Sprintf("within %s: shift %v, first ride served elsewhere %v", cfg.MaxWait, sh.set, fse.set)
		}
		check("RTO", fmt.Sprintf("≤ %gs (%s)", o.RTOSeconds, o.RTOFrom), fmtS(res.RTOSeconds), res.RTOSeconds >= 0 && res.RTOSeconds <= o.RTOSeconds, detail)
	} else {
		check("RTO (replication catch-up)", fmt.Sprintf("≤ %gs (%s)", o.RTOSeconds, o.RTOFrom), fmtS(res.RTOSeconds), res.RTOSeconds >= 0 && res.RTOSeconds <= o.RTOSeconds,
			"from the fault's clearing to every pair of "+strings.Join(p.faulted, ", ")+" back within its RPO and every ride acknowledged before it in every region")
		check("detected", "the fault is noticed while it holds", fmtS(res.DetectSeconds), det.set, det.by)
	}
	rpoDetail := fmt.Sprintf("%d acknowledged rides looked up in %s while the fault held; %d missing after %s of settling", res.RPO.Checked, strings.Join(res.RPO.CheckedIn, ", "), missing, cfg.Settle)
	if !p.failover {
		rpoDetail = fmt.Sprintf("%d rides acknowledged before the clearing looked up in %s until recovered; %d never arrived. Held back at the clearing: %d rides, a %.3fs window",
			res.RPO.Checked, strings.Join(res.RPO.CheckedIn, ", "), missing, sumCounts(res.RPO.HeldBack), res.RPO.HeldBackWindowSeconds)
	}
	check("RPO", fmt.Sprintf("≤ %gs (%s)", o.RPOSeconds, o.RPOFrom), fmt.Sprintf("%.3fs", res.RPOSeconds),
		res.RPO.CheckedIn != nil && res.RPOSeconds <= o.RPOSeconds && res.RPO.Unverified == 0, rpoDetail)
	check("order-creation success", fmt.Sprintf("≥ %.4f%% (%s)", 100*o.Success, o.SuccessFrom), fmt.Sprintf("%.4f%%", 100*res.SuccessRatio),
		res.Load.Sent > 0 && res.SuccessRatio >= o.Success-1e-12,
		fmt.Sprintf("%d of %d rides acknowledged; one failure in %d moves the ratio by %.4f%%", res.Load.Acked, res.Load.Sent, max(res.Load.Sent, 1), 100/float64(max(res.Load.Sent, 1))))
	check("ride ids", "unique, and increasing per node", fmt.Sprintf("%d duplicates, %d out of order", res.IDs.Duplicates, res.IDs.OrderViolations),
		res.IDs.Checked > 0 && res.IDs.Duplicates == 0 && res.IDs.OrderViolations == 0, fmt.Sprintf("%d ids from %d nodes", res.IDs.Checked, res.IDs.Nodes))
	if p.needsEngine {
		check("breaker tripped", "the engine opens "+strings.Join(p.faulted, ", ")+"'s breaker", fmtS(secs(t0, brk)), brk.set, brk.by)
	}
	end := "the clearing"
	if cfg.External {
		end = "the fault's end (the region's health checks passing again)"
	}
	recovered := healthy
	if back.set && back.at.After(recovered.at) {
		recovered = back
	}
	check("recovered", fmt.Sprintf("serving again within %s of %s", cfg.RecoverTimeout, end), fmtS(secs(recoverFrom, mark{recovered.at, "", healthy.set && back.set})), healthy.set && back.set,
		fmt.Sprintf("every gateway sees %s healthy (%s) and it served a ride again (%s)", strings.Join(p.faulted, ", "), fmtS(secs(recoverFrom, healthy)), fmtS(secs(recoverFrom, back))))
	notConv := 0
	for _, n := range res.RPO.NotConverged {
		notConv += n
	}
	check("converged", "every region has every acknowledged ride after recovery", fmt.Sprintf("%d missing", notConv), res.RPO.ConvergenceChecked && notConv == 0, "")

	if !res.Engine {
		res.Notes = append(res.Notes, "no SLA engine was polled: detection and decision are the gateways' own (probes, ejection)")
	}
	if cfg.Fallbacks > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("riders' apps try up to %d other gateway(s) with the same Idempotency-Key after no answer or a 5xx; the first-attempt success is reported next to the success", cfg.Fallbacks))
	}
	if p.scenario == spec.ScenarioLatencySpike {
		res.Notes = append(res.Notes, "the latency is added to the order service, which also answers the gateways' health checks: a latency above the probe timeout makes the probes fail too")
	}
}

// finishChecks adds the check of the load itself, once the load
// generator's numbers are in, and the verdict.
func (r *Runner) finishChecks(res *Result) {
	res.Checks = append(res.Checks, Check{Name: "load schedule", Objective: "no ride dropped by the generator",
		Measured: fmt.Sprintf("%d dropped", res.Load.Dropped), Passed: res.Load.Dropped == 0,
		Detail: fmt.Sprintf("%.1f rides/s achieved of %.1f", res.Load.AchievedRate, r.cfg.Rate)})
	res.Passed = true
	for _, c := range res.Checks {
		res.Passed = res.Passed && c.Passed
	}
}

// record hands the result to the metrics and the recorder; failures are
// logged (the drill's verdict stands without them).
func (r *Runner) record(ctx context.Context, res *Result) {
	if r.cfg.Metrics != nil && res.Measurable {
		if err := r.cfg.Metrics.Record(res.Scenario, res.Phases(), time.Duration(max(res.RPOSeconds, 0)*float64(time.Second))); err != nil {
			r.cfg.Log.Error("recording the drill metrics", "err", err)
		}
	}
	if r.cfg.Recorder != nil {
		if err := r.cfg.Recorder.RecordDrill(ctx, *res); err != nil {
			r.cfg.Log.Error("recording the drill result", "err", err)
			res.Notes = append(res.Notes, "the result could not be recorded: "+err.Error())
		}
	}
}
