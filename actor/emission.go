package actor

import "iter"

// An instance's work runs as a coroutine (iter.Pull), so that work which emits more than its
// outputs can take stops in the middle and goes on later where it stopped: a FlatMap's
// fan-out, a window's firings at one watermark, a join's matches, a process function's
// timers, an aggregate's results at the end of input. A Writer whose buffer for a
// destination holds a full batch, with no credit to send it, suspends the work
// (waitForCredit) instead of growing the buffer; the instance's actor returns to its mailbox,
// takes the credit when it comes and resumes the work. So no batch exceeds the batch size,
// and no sender holds more than a batch per destination besides the Credits batches in
// flight, whatever one record, one watermark or the end of input sets off, and the
// operators' code (in stream, and the user's) is unaware of it.
//
// While the work is suspended, the instance takes credits and linger ticks, and nothing else:
// every other message (batches, end of stream, checkpoint triggers, timers, watermark ticks)
// waits in the backlog, in order, until the work is done. A barrier or a watermark therefore
// never overtakes the records emitted before it, and a checkpoint's snapshot is never taken
// in the middle of an emission: the state it sees is the state after everything emitted
// before the barrier. The backlog is bounded as the mailbox is: batches by the credits the
// instance granted, the ticks by being armed once each.

// emission is the coroutine of one instance and what waits for it.
type emission struct {
	next  func() (struct{}, bool)
	stop  func()
	yield func(struct{}) bool
	// msg is the message the coroutine handles next.
	msg any
	// inside says the coroutine runs (the work may wait); suspended that it waits for
	// credit; woken that an output got credit back while it waited, which calls for the
	// drain (or pull) that unstall would have done.
	inside    bool
	suspended bool
	woken     bool
	// stopping says the coroutine is being unwound: code that swallowed the unwinding and
	// emits again is unwound again.
	stopping bool
	backlog  []any
}

// wakeMsg goes on after credit has come back: the runner drains its queue, or a source
// pulls again. It is the coroutine's own message, never sent.
type wakeMsg struct{}

// unwinding is the panic that unwinds suspended work whose instance stops (the job ends
// while it waits for credit).
type unwinding struct{}

// Unwinding reports whether p, a value recovered from a panic, is the runtime unwinding a
// task's work because its instance stops while the work waits for credit. Code that
// recovers panics around what may emit must panic again with p when it is.
func Unwinding(p any) bool {
	_, ok := p.(unwinding)
	return ok
}

// deliver hands msg to the instance: to its work when none is suspended, to the outputs when
// it is a credit, and otherwise to the backlog.
func (r *runner) deliver(msg any) {
	if r.done || len(r.outputs) == 0 {
		// Finished (only checkpoint triggers to answer), or no channel out (its chain ends
		// in sinks): nothing ever waits for credit, and no coroutine is needed.
		r.receive(msg)
		return
	}
	if r.em.suspended {
		switch m := msg.(type) {
		case *Credit:
			r.outputs[m.Group].credit(m.Dest, m.Records)
			r.resume()
		case flushTickMsg:
			// Partly filled batches go out as credit allows; the full one waits for its own.
			r.lingerArmed = false
			for _, g := range r.outputs {
				g.flush()
			}
		default:
			r.em.backlog = append(r.em.backlog, msg)
		}
		return
	}
	if outputOnly(r, msg) {
		// Sends, and the wake-ups to arm: no switch to the coroutine, which costs a few
		// hundred nanoseconds each way on a busy machine.
		r.receive(msg)
		if r.done {
			r.stopEmission()
		}
		return
	}
	r.em.msg = msg
	r.resume()
}

// outputOnly reports whether msg only makes the instance send what it holds: a credit that
// does not let it take input again, a linger or watermark tick. It can never wait.
func outputOnly(r *runner, msg any) bool {
	switch m := msg.(type) {
	case *Credit:
		return !r.outputs[m.Group].stalled[m.Dest]
	case flushTickMsg:
		// A holder to drain writes, which may wait: that is the work's.
		return !r.holding()
	case wmTickMsg:
		return true
	}
	return false
}

// resume runs the coroutine until the work is suspended again or done, and then what waited
// for it.
func (r *runner) resume() {
	for {
		r.step()
		if r.em.suspended || r.done {
			break
		}
		if r.em.woken {
			r.em.woken = false
			r.em.msg = wakeMsg{}
			continue
		}
		if len(r.em.backlog) == 0 {
			break
		}
		r.em.msg = r.em.backlog[0]
		r.em.backlog[0] = nil
		r.em.backlog = r.em.backlog[1:]
	}
	if r.done {
		r.stopEmission()
	}
}

// step switches to the coroutine, starting it on first use, until it yields.
func (r *runner) step() {
	if r.em.next == nil {
		r.em.next, r.em.stop = iter.Pull(r.work)
	}
	r.em.suspended = false
	r.em.inside = true
	ok := false
	defer func() {
		r.em.inside = false
		if !ok { // the work panicked: the coroutine is gone, and the job fails
			r.em.next, r.em.stop, r.em.yield = nil, nil, nil
			r.em.suspended = false
		}
	}()
	r.em.next()
	ok = true
}

// work is the coroutine: it handles one message per switch.
func (r *runner) work(yield func(struct{}) bool) {
	r.em.yield = yield
	defer func() {
		if p := recover(); p != nil && !Unwinding(p) {
			panic(p)
		}
	}()
	for {
		msg := r.em.msg
		r.em.msg = nil
		if _, ok := msg.(wakeMsg); ok {
			r.wake()
		} else {
			r.receive(msg)
		}
		if !yield(struct{}{}) {
			return
		}
	}
}

// waitForCredit suspends the work in progress until a credit has come back. It reports
// false, without waiting, when the caller is not the instance's work (it must go on then).
func (r *runner) waitForCredit() bool {
	if r.em.stopping {
		panic(unwinding{})
	}
	if !r.em.inside || r.em.yield == nil {
		return false
	}
	r.em.suspended = true
	if !r.em.yield(struct{}{}) {
		panic(unwinding{})
	}
	return true
}

// stopEmission ends the coroutine; suspended work is unwound, and what waited is dropped
// (the instance has finished, or its job is over).
func (r *runner) stopEmission() {
	stop := r.em.stop
	r.em.next, r.em.stop, r.em.yield = nil, nil, nil
	r.em.suspended, r.em.woken = false, false
	backlog := r.em.backlog
	r.em.backlog = nil
	if r.done {
		for _, m := range backlog {
			r.receive(m) // checkpoint triggers still want their answer
		}
	}
	if stop != nil {
		func() {
			// Code that swallowed the unwinding and panicked otherwise: the instance is
			// gone either way.
			r.em.stopping = true
			defer func() {
				r.em.stopping = false
				_ = recover()
			}()
			stop()
		}()
	}
}
