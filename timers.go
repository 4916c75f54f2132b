package ioloop

import "time"

// Timeout is a handle to a scheduled call, returned by CallLater and
// CallAt and accepted by RemoveTimeout.
type Timeout struct {
	loop     *IOLoop
	deadline time.Duration // offset from loop.epoch; immutable
	seq      uint64        // scheduling order, for FIFO among equal deadlines; immutable
	fn       func()        // under loop.mu; nil once fired or removed
	index    int           // under loop.mu; position in the heap, -1 when not in it
}

// Deadline returns when the call is (or was) due.
func (t *Timeout) Deadline() time.Time { return t.loop.epoch.Add(t.deadline) }

// Cancel is t.loop.RemoveTimeout(t).
func (t *Timeout) Cancel() { t.loop.RemoveTimeout(t) }

// CallLater runs fn on the loop goroutine once d has passed on the loop's
// monotonic clock. Calls due at the same instant run in the order they
// were scheduled. After Close the returned Timeout never fires.
func (l *IOLoop) CallLater(d time.Duration, fn func()) *Timeout {
	return l.schedule(l.now()+d, fn)
}

// CallAt runs fn on the loop goroutine at when. A when carrying a
// monotonic reading (from Time or time.Now) is measured on the monotonic
// clock; a wall-clock-only time is converted once, now.
func (l *IOLoop) CallAt(when time.Time, fn func()) *Timeout {
	return l.schedule(when.Sub(l.epoch), fn)
}

func (l *IOLoop) schedule(deadline time.Duration, fn func()) *Timeout {
	t := &Timeout{loop: l, deadline: deadline, index: -1}
	if l.push(t, fn) {
		l.wakeup() // the sleeping loop's timeout may be too long now
	}
	return t
}

// push adds t to the heap, under mu, and reports whether it is now the
// earliest timer. A closed loop or a nil fn leaves t out: it never fires.
func (l *IOLoop) push(t *Timeout, fn func()) (first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || fn == nil {
		return false
	}
	l.timerSeq++
	t.seq, t.fn = l.timerSeq, fn
	l.timers.push(t)
	l.timerCount.Store(int32(len(l.timers)))
	return t.index == 0
}

// RemoveTimeout cancels t. It is a no-op for a nil, fired or already
// removed Timeout, and on a closed loop, and it works from inside a timer
// for another timer due in the same iteration: that one will not run. The
// timer leaves the heap at once, so cancelled timers never pile up. Safe
// from any goroutine.
func (l *IOLoop) RemoveTimeout(t *Timeout) {
	if t == nil || t.loop != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.fn = nil
	if t.index >= 0 {
		l.timers.remove(t.index)
		l.timerCount.Store(int32(len(l.timers)))
	}
}

// runDueTimers runs every timer due now. All of them are collected before
// the first runs (libuv, Tornado 4.5), so a timer that schedules another
// for "now" cannot keep the loop here forever.
func (l *IOLoop) runDueTimers() {
	if l.timerCount.Load() == 0 {
		return
	}
	due := l.collectDue()
	fired := 0
	for i, t := range due {
		due[i] = nil
		if fn := l.claim(t); fn != nil { // nil: removed by an earlier timer of this batch
			fired++
			l.runFunc("timer", fn)
		}
	}
	l.due = due[:0]
	bump(&l.stats.timers, uint64(fired))
}

// collectDue pops every due timer, under mu.
func (l *IOLoop) collectDue() []*Timeout {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	due := l.due[:0]
	for len(l.timers) > 0 && l.timers[0].deadline <= now {
		due = append(due, l.timers.pop())
	}
	l.timerCount.Store(int32(len(l.timers)))
	return due
}

// claim takes a collected timer's function, under mu; nil if it was
// removed since.
func (l *IOLoop) claim(t *Timeout) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn := t.fn
	t.fn = nil
	return fn
}

// timerHeap is a binary min-heap ordered by (deadline, seq). Each Timeout
// knows its index, so removal is O(log n) and leaves nothing behind.
type timerHeap []*Timeout

func (h timerHeap) less(i, j int) bool {
	a, b := h[i], h[j]
	return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq)
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

func (h timerHeap) down(i int) {
	n := len(h)
	for {
		smallest, left := i, 2*i+1
		if left < n && h.less(left, smallest) {
			smallest = left
		}
		if right := left + 1; right < n && h.less(right, smallest) {
			smallest = right
		}
		if smallest == i {
			return
		}
		h.swap(i, smallest)
		i = smallest
	}
}

func (h *timerHeap) push(t *Timeout) {
	t.index = len(*h)
	*h = append(*h, t)
	h.up(t.index)
}

func (h *timerHeap) pop() *Timeout {
	return h.remove(0)
}

func (h *timerHeap) remove(i int) *Timeout {
	old := *h
	last := len(old) - 1
	t := old[i]
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil
	*h = old[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
	t.index = -1
	h.shrink()
	return t
}

// shrink gives memory back after a burst: a million timers added and
// removed must not keep a million-slot array alive.
func (h *timerHeap) shrink() {
	if c := cap(*h); c > 1024 && len(*h) < c/4 {
		*h = append(make(timerHeap, 0, c/2), *h...)
	}
}
