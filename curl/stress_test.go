//go:build linux && cgo

package curl

import (
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// pump keeps conc transfers of req in flight on the loop until n have
// completed, refilling from the callbacks (the steady path), and returns
// the number of failures.
func pump(t testing.TB, r *rig, req *Request, conc, n int) int {
	t.Helper()
	done := make(chan int, 1)
	r.on(func() {
		started, finished, failed := 0, 0, 0
		var cb func(*Response, error)
		cb = func(resp *Response, err error) {
			finished++
			if err != nil || resp.StatusCode != 200 {
				failed++
			}
			if started < n {
				started++
				r.c.Fetch(req, cb)
			}
			if finished == n {
				done <- failed
			}
		}
		for ; started < conc && started < n; started++ {
			r.c.Fetch(req, cb)
		}
	})
	select {
	case failed := <-done:
		return failed
	case <-time.After(2 * waitLimit):
		t.Fatal("the transfers did not complete")
	}
	return 0
}

// 10,000 requests leave no fd, goroutine, Go heap or C memory behind: the
// counts after a warm-up and after 10,000 more are the same (within
// noise).
func TestTenThousandRequestsNoGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	srv, conns := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("Hello, world!\n"))
	}))
	r := newRig(t)
	req := &Request{URL: srv.URL, Header: http.Header{"X-Test": {"growth"}}, Timeout: 10 * time.Second}
	const conc = 20
	if f := pump(t, r, req, conc, 2000); f != 0 {
		t.Fatalf("%d warm-up transfers failed", f)
	}
	fds, gs, heap, rss := openFDs(t), runtime.NumGoroutine(), heapInuse(), rssBytes(t)
	var watches int64
	r.on(func() { watches = r.c.cWatches() })

	if f := pump(t, r, req, conc, 10_000); f != 0 {
		t.Fatalf("%d transfers failed", f)
	}
	fds2, gs2, heap2, rss2 := openFDs(t), runtime.NumGoroutine(), heapInuse(), rssBytes(t)
	var watches2 int64
	var slots int
	r.on(func() { watches2, slots = r.c.cWatches(), r.c.slotCount() })
	t.Logf("fds %d -> %d, goroutines %d -> %d, Go heap %d -> %d KiB, RSS %d -> %d KiB, watches %d -> %d, slots %d, server connections %d",
		fds, fds2, gs, gs2, heap>>10, heap2>>10, rss>>10, rss2>>10, watches, watches2, slots, conns.n.Load())
	if fds2 > fds {
		t.Errorf("fds grew from %d to %d", fds, fds2)
	}
	if gs2 > gs+2 {
		t.Errorf("goroutines grew from %d to %d", gs, gs2)
	}
	if heap2 > heap+2<<20 {
		t.Errorf("Go heap grew from %d to %d KiB", heap>>10, heap2>>10)
	}
	if rss2 > rss+8<<20 && !asanBuild {
		t.Errorf("RSS grew from %d to %d KiB", rss>>10, rss2>>10)
	}
	if watches2 > watches || slots > conc {
		t.Errorf("watches %d -> %d, %d slots for %d concurrent transfers", watches, watches2, slots, conc)
	}
	if n := conns.n.Load(); n > conc {
		t.Errorf("%d connections for %d concurrent transfers: keep-alive not used", n, conc)
	}
}

// 100 MB through OnBody: the body is never buffered, in Go or in C.
func TestHundredMegabytesStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const total = 100 << 20
	chunk := make([]byte, 256<<10)
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(total))
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	r := newRig(t)
	heap0, rss0 := heapInuse(), rssBytes(t)
	var got, calls int
	var maxHeap uint64
	var maxRSS int64
	res := r.mustDo(&Request{URL: srv.URL, OnBody: func(p []byte) error {
		got += len(p)
		if calls++; calls%128 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			maxHeap = max(maxHeap, ms.HeapInuse)
			maxRSS = max(maxRSS, rssBytes(t))
		}
		return nil
	}})
	if got != total || res.Body != nil {
		t.Fatalf("OnBody got %d bytes of %d; Response.Body %d", got, total, len(res.Body))
	}
	t.Logf("%d chunks; Go heap %d KiB, peak %d KiB; RSS %d KiB, peak %d KiB",
		calls, heap0>>10, maxHeap>>10, rss0>>10, maxRSS>>10)
	if maxHeap > heap0+16<<20 {
		t.Errorf("the Go heap grew by %d KiB while streaming", (maxHeap-heap0)>>10)
	}
	if maxRSS > rss0+32<<20 && !asanBuild {
		t.Errorf("RSS grew by %d KiB while streaming", (maxRSS-rss0)>>10)
	}
}
