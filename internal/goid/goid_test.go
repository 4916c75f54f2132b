package goid

import (
	"runtime"
	"sync"
	"testing"
)

// The identity must be stable within a goroutine, differ between live
// goroutines, and survive the goroutine moving between OS threads.
func TestCurrentIdentifiesGoroutines(t *testing.T) {
	self := Current()
	if self == 0 {
		t.Fatal("Current() = 0")
	}
	for range 100 {
		runtime.Gosched()
		if got := Current(); got != self {
			t.Fatalf("Current() changed within one goroutine: %#x then %#x", self, got)
		}
	}
	const n = 16
	ids := make([]uintptr, n)
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	for i := range n {
		go func() {
			ids[i] = Current()
			started.Done()
			release.Wait() // all alive at once: no g can be recycled
		}()
	}
	started.Wait()
	seen := map[uintptr]bool{self: true}
	for i, id := range ids {
		if seen[id] {
			t.Fatalf("goroutine %d shares identity %#x with another live goroutine", i, id)
		}
		seen[id] = true
	}
	release.Done()
}

func BenchmarkCurrent(b *testing.B) {
	var x uintptr
	for b.Loop() {
		x += Current()
	}
	_ = x
}
