//go:build linux && cgo

package ioloop

// Benchmarks of the core (numbers in README and the closing notes). Run:
//
//	go test -run '^$' -bench . -benchmem -count 6 . | tee new.txt
//	benchstat old.txt new.txt
//
// The C baseline runs in the same process and the same run, so the ratio
// BenchmarkDispatch/ioloop/... : BenchmarkDispatch/C/... is what counts,
// not the absolute numbers of a shared VM.

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/ioloop-go/ioloop/internal/cpingpong"
	"golang.org/x/sys/unix"
)

// newBenchLoop returns a loop for a benchmark, closed at its end. Start
// may raise GOMAXPROCS (see Start); it is put back afterwards so the
// testing package does not complain, and the loop logs nowhere, so that
// nothing interleaves with the benchmark's result lines.
func newBenchLoop(b *testing.B) *IOLoop {
	b.Helper()
	procs := runtime.GOMAXPROCS(0)
	l, err := New(WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = l.Close(false)
		runtime.GOMAXPROCS(procs)
	})
	return l
}

// newPingPong makes npairs non-blocking socketpairs with one byte in
// flight in each, as [a0, b0, a1, b1, ...].
func newPingPong(b *testing.B, npairs int) []int32 {
	b.Helper()
	fds := make([]int32, 0, 2*npairs)
	for range npairs {
		p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, int32(p[0]), int32(p[1]))
		if _, err := unix.Write(p[0], []byte{'x'}); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, fd := range fds {
			_ = unix.Close(int(fd))
		}
	})
	return fds
}

// bouncer is the Go twin of the C loop's body: read the byte, write it
// back. Raw syscalls, because the fds are non-blocking (see STYLE.md).
type bouncer struct {
	loop    *IOLoop
	buf     [1]byte
	handled int
	target  int
}

func (h *bouncer) HandleEvents(fd int, _ Events) {
	p := uintptr(unsafe.Pointer(&h.buf[0]))
	if n, _, _ := unix.RawSyscall(unix.SYS_READ, uintptr(fd), p, 1); n == 1 {
		if n, _, _ := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), p, 1); n == 1 {
			h.handled++
			if h.handled == h.target {
				h.loop.Stop()
			}
		}
	}
}

// processCPU is the CPU time (user+system) the process has used. On a
// shared VM, CPU time per event is steadier than wall time per event,
// which also counts the time other tenants held the core.
func processCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(processCPU()-since)/float64(b.N), "cpu-ns/op")
}

// shapePoller swaps the production dispatch shape for one we measured
// against it.
type shapePoller struct {
	*epollPoller
	poll func(timeoutMs int) (bool, error)
}

func (s shapePoller) Poll(timeoutMs int) (bool, error) { return s.poll(timeoutMs) }

// BenchmarkDispatch: cost per event of a socketpair ping-pong (one read
// and one write per event), ioloop against the same loop in C, and the
// dispatch shapes we considered. ns/op is per event.
func BenchmarkDispatch(b *testing.B) {
	for _, pairs := range []int{1, 64} {
		b.Run(fmt.Sprintf("C/pairs=%d", pairs), func(b *testing.B) {
			fds := newPingPong(b, pairs)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			if _, err := cpingpong.Run(fds, b.N); err != nil {
				b.Fatal(err)
			}
			reportCPU(b, cpu)
		})
		for _, shape := range []string{"ioloop", "ioloop-callback-per-event", "ioloop-callback-per-batch"} {
			b.Run(fmt.Sprintf("%s/pairs=%d", shape, pairs), func(b *testing.B) {
				benchDispatch(b, pairs, shape)
			})
		}
	}
}

func benchDispatch(b *testing.B, pairs int, shape string) {
	l := newBenchLoop(b)
	ep := l.poller.(*epollPoller)
	switch shape {
	case "ioloop-callback-per-event":
		l.poller = shapePoller{ep, ep.pollEach}
	case "ioloop-callback-per-batch":
		l.poller = shapePoller{ep, ep.pollCallback}
	}
	h := &bouncer{loop: l, target: b.N}
	for _, fd := range newPingPong(b, pairs) {
		if err := l.AddHandler(int(fd), h, Read); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	if err := l.Start(); err != nil {
		b.Fatal(err)
	}
	reportCPU(b, cpu)
	b.StopTimer()
	s := l.Stats()
	b.ReportMetric(float64(s.Events)/float64(s.Iterations), "events/batch")
}

// BenchmarkAddCallback: queue and run one callback.
func BenchmarkAddCallback(b *testing.B) {
	b.Run("from-loop", func(b *testing.B) {
		l := newBenchLoop(b)
		ran := 0
		fn := func() { ran++ }
		b.ReportAllocs()
		b.ResetTimer()
		_ = l.AddCallback(func() {
			for range b.N {
				_ = l.AddCallback(fn)
			}
			_ = l.AddCallback(l.Stop)
		})
		_ = l.Start()
		if ran != b.N {
			b.Fatalf("ran %d of %d", ran, b.N)
		}
	})
	b.Run("from-goroutines", func(b *testing.B) {
		l := newBenchLoop(b)
		var ran atomic.Int64
		fn := func() { ran.Add(1) }
		done := make(chan error)
		go func() { done <- l.Start() }()
		for l.Stats().Iterations == 0 {
			time.Sleep(time.Millisecond)
		}
		before := l.Stats()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = l.AddCallback(fn)
			}
		})
		for ran.Load() < int64(b.N) {
			runtime.Gosched()
		}
		b.StopTimer()
		after := l.Stats()
		l.Stop()
		<-done
		b.ReportMetric(float64(after.Wakeups-before.Wakeups)/float64(b.N), "wakeups/op")
	})
}

// BenchmarkCallLater: schedule a due timer and fire it.
func BenchmarkCallLater(b *testing.B) {
	l := newBenchLoop(b)
	fired := 0
	fn := func() { fired++ }
	b.ReportAllocs()
	b.ResetTimer()
	_ = l.AddCallback(func() {
		for range b.N {
			l.CallLater(0, fn)
		}
		l.CallLater(0, l.Stop)
	})
	_ = l.Start()
	if fired != b.N {
		b.Fatalf("fired %d of %d", fired, b.N)
	}
}

// BenchmarkMillionTimers is libuv's benchmark-million-timers: schedule a
// million timers over a millisecond and run them all. ns/op is per timer.
func BenchmarkMillionTimers(b *testing.B) {
	const n = 1_000_000
	b.ReportAllocs()
	for range b.N {
		l, _ := New(WithLogger(slog.New(slog.DiscardHandler)), WithGOMAXPROCSUnchanged())
		fired := 0
		fn := func() { fired++ }
		_ = l.AddCallback(func() {
			for i := range n {
				l.CallLater(time.Duration(i%1000)*time.Microsecond, fn)
			}
			l.CallLater(2*time.Millisecond, l.Stop)
		})
		_ = l.Start()
		_ = l.Close(false)
		if fired != n {
			b.Fatalf("fired %d of %d", fired, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/timer")
}

// BenchmarkAddRemoveHandler: register and unregister an fd (two epoll_ctl).
func BenchmarkAddRemoveHandler(b *testing.B) {
	l := newBenchLoop(b)
	fd, _ := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	defer unix.Close(fd)
	h := HandlerFunc(func(int, Events) {})
	b.ReportAllocs()
	for b.Loop() {
		if err := l.AddHandler(fd, h, Read); err != nil {
			b.Fatal(err)
		}
		if err := l.RemoveHandler(fd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryPerFD reports the Go heap the loop spends per registered
// fd (target: at most 64 bytes), with 10,000 eventfds sharing one handler.
func BenchmarkMemoryPerFD(b *testing.B) {
	const n = 10_000
	fds := make([]int, 0, n)
	for range n {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			b.Skipf("cannot open %d eventfds: %v", n, err)
		}
		fds = append(fds, fd)
	}
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	h := HandlerFunc(func(int, Events) {})
	var perFD float64
	for b.Loop() {
		l, _ := New(WithGOMAXPROCSUnchanged())
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, fd := range fds {
			if err := l.AddHandler(fd, h, Read); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perFD = float64(after.HeapAlloc-before.HeapAlloc) / n
		_ = l.Close(false)
	}
	b.ReportMetric(perFD, "B/fd")
}
