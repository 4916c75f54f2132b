//go:build linux && cgo

package ioloop

import (
	"testing"
	"time"
)

// The grid is checked on the deadlines the PeriodicCallback scheduled, not
// on wall-clock arrival times, so a loaded machine cannot make it flaky.
func TestPeriodicCallbackOverrunSkipsCyclesAndKeepsGrid(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	const period = 10 * time.Millisecond
	var start time.Duration
	var deadlines []time.Duration
	var pc *PeriodicCallback
	pc = NewPeriodicCallback(l, period, func() {
		pc.mu.Lock()
		deadlines = append(deadlines, pc.next)
		pc.mu.Unlock()
		if len(deadlines) == 1 {
			time.Sleep(35 * time.Millisecond) // overrun by 3.5 periods
		}
		if len(deadlines) == 4 {
			pc.Stop()
			l.Stop()
		}
	})
	_ = l.AddCallback(func() {
		pc.Start()
		pc.mu.Lock()
		start = pc.next - period // Start schedules one period from now
		pc.mu.Unlock()
	})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	var slots []int
	for _, d := range deadlines {
		off := d - start
		if off%period != 0 {
			t.Fatalf("deadline %v is off the grid started at %v", d, start)
		}
		slots = append(slots, int(off/period))
	}
	if slots[0] != 1 {
		t.Fatalf("first call in slot %d, want 1: %v", slots[0], slots)
	}
	// The first call ran until 4.5 periods: slots 2-4 were missed and are
	// skipped, not run back to back.
	if slots[1] < 5 {
		t.Fatalf("after the overrun the next call was scheduled in slot %d, want >= 5: %v", slots[1], slots)
	}
	for i := 2; i < len(slots); i++ {
		if slots[i] <= slots[i-1] {
			t.Fatalf("calls not on increasing grid slots: %v", slots)
		}
	}
}
