package order

import (
	"context"
	"sync"
	"sync/atomic"
)

const actorShards = 16

// actors runs each ride's transitions one at a time, in arrival order, on a
// goroutine owned by that ride (the ride's actor). An actor starts with the
// first message for its ride and exits as soon as its mailbox is empty, so
// idle rides cost nothing. At most max actors run at once and each mailbox
// holds at most mailbox messages; past either bound send refuses at once
// (errBusy) rather than queue without limit.
type actors struct {
	shards  [actorShards]actorShard
	max     int64
	mailbox int
	active  atomic.Int64
	// onActive is told +1/-1 as actors start and exit (a gauge).
	onActive func(delta float64)
}

type actorShard struct {
	mu sync.Mutex
	m  map[int64]*actor
}

// actor is one ride's mailbox; q is guarded by its shard's mu.
type actor struct {
	q []func()
}

func newActors(max, mailbox int, onActive func(float64)) *actors {
	a := &actors{max: int64(max), mailbox: mailbox, onActive: onActive}
	for i := range a.shards {
		a.shards[i].m = map[int64]*actor{}
	}
	return a
}

// send queues fn on the actor of ride id, starting it if needed.
func (a *actors) send(id int64, fn func()) error {
	sh := &a.shards[uint64(id)%actorShards]
	sh.mu.Lock()
	act, ok := sh.m[id]
	if !ok {
		if a.active.Add(1) > a.max {
			a.active.Add(-1)
			sh.mu.Unlock()
			return errBusy
		}
		act = &actor{}
		sh.m[id] = act
		act.q = append(act.q, fn)
		sh.mu.Unlock()
		a.onActive(1)
		go a.run(sh, id, act)
		return nil
	}
	if len(act.q) >= a.mailbox {
		sh.mu.Unlock()
		return errBusy
	}
	act.q = append(act.q, fn)
	sh.mu.Unlock()
	return nil
}

// run drains the actor's mailbox and exits when it is empty; the removal
// from the shard happens under the same lock as the emptiness check, so a
// message is never left behind.
func (a *actors) run(sh *actorShard, id int64, act *actor) {
	for {
		sh.mu.Lock()
		if len(act.q) == 0 {
			delete(sh.m, id)
			sh.mu.Unlock()
			a.active.Add(-1)
			a.onActive(-1)
			return
		}
		fn := act.q[0]
		act.q[0] = nil
		act.q = act.q[1:]
		sh.mu.Unlock()
		fn()
	}
}

// running returns the number of live actors.
func (a *actors) running() int { return int(a.active.Load()) }

// do runs fn on ride id's actor and waits for its answer or for ctx. fn
// gets a context that keeps ctx's values (the trace) but not its
// cancellation: once a transition starts it finishes, even if the caller
// went away; each dependency call inside bounds itself.
func do[T any](ctx context.Context, a *actors, id int64, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	actx := context.WithoutCancel(ctx)
	if err := a.send(id, func() {
		v, err := fn(actx)
		ch <- result{v, err}
	}); err != nil {
		var zero T
		return zero, err
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
