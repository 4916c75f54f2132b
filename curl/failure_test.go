//go:build linux && cgo

package curl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// checkTimeout checks that a transfer timed out, no earlier than after
// want and not much later (the slack absorbs a loaded machine; an early
// or missing timeout is what this catches).
func checkTimeout(t *testing.T, what string, resp *Response, err error, elapsed, want time.Duration) {
	t.Helper()
	e := curlErr(t, resp, err)
	if !errors.Is(err, os.ErrDeadlineExceeded) || e.Code != CodeOperationTimedOut {
		t.Errorf("%s: %v, want a timeout", what, err)
	}
	if elapsed < want || elapsed > want+1500*time.Millisecond {
		t.Errorf("%s: timed out after %v, want %v", what, elapsed, want)
	}
}

// A server that sends nothing, or stops in the middle of the body: the
// request Timeout fires on time.
func TestTimeoutStalledServer(t *testing.T) {
	mux := http.NewServeMux()
	g := make(chan struct{})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-g:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		select {
		case <-g:
		case <-r.Context().Done():
		}
	})
	srv, _ := newServer(t, mux)
	t.Cleanup(func() { close(g) })
	r := newRig(t)
	const timeout = 300 * time.Millisecond
	for _, path := range []string{"/headers", "/body"} {
		start := time.Now()
		resp, err := r.do(&Request{URL: srv.URL + path, Timeout: timeout})
		checkTimeout(t, path, resp, err, time.Since(start), timeout)
	}
	// ConnectTimeout does not limit a transfer once connected.
	start := time.Now()
	resp, err := r.do(&Request{URL: srv.URL + "/headers", Timeout: timeout, ConnectTimeout: 100 * time.Millisecond})
	checkTimeout(t, "with ConnectTimeout", resp, err, time.Since(start), timeout)
}

// A server that closes the connection in the middle of the body: the
// transfer fails (CodePartialFile), and the client goes on.
func TestServerClosesMidBody(t *testing.T) {
	url := rawServer(t, func(conn net.Conn) {
		readHead(conn)
		conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"))
		conn.Write(bytes.Repeat([]byte("a"), 500))
	})
	ok, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	resp, err := r.do(&Request{URL: url})
	if e := curlErr(t, resp, err); e.Code != CodePartialFile {
		t.Fatalf("%v, want CodePartialFile", err)
	}
	r.mustDo(&Request{URL: ok.URL})
}

// A malformed status line or a reply that is not HTTP fails the transfer.
func TestMalformedStatusLine(t *testing.T) {
	r := newRig(t)
	for _, reply := range []string{
		"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 99999999999 OK\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
		"\x00\x01\x02\x03 binary\r\n\r\n",
	} {
		url := rawServer(t, func(conn net.Conn) {
			readHead(conn)
			conn.Write([]byte(reply))
		})
		resp, err := r.do(&Request{URL: url, Timeout: 5 * time.Second})
		e := curlErr(t, resp, err)
		if e.Code == CodeOK || e.Code == CodeOperationTimedOut {
			t.Errorf("reply %q: %v", reply, err)
		}
		t.Logf("reply %q: %v", reply, err)
	}
}

// streamServer sends 1 KiB chunks every 5 ms until the client goes away,
// and reports when each handler ended.
func streamServer(t *testing.T) (*httptest.Server, chan string) {
	ended := make(chan string, 100)
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { ended <- r.URL.Path }()
		chunk := make([]byte, 1024)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}))
	return srv, ended
}

// Cancelling the context mid-transfer stops it: Do returns the context's
// error, no body callback runs after that, the server sees the
// connection go.
func TestCancelMidTransfer(t *testing.T) {
	srv, ended := streamServer(t)
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	var chunks atomic.Int32
	start := time.Now()
	resp, err := r.c.Do(ctx, &Request{URL: srv.URL + "/stream", OnBody: func([]byte) error {
		if chunks.Add(1) == 3 {
			cancel()
		}
		return nil
	}})
	e := curlErr(t, resp, err)
	if !errors.Is(err, context.Canceled) || e.Code != CodeOK {
		t.Fatalf("%v, want context.Canceled", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the cancellation took %v", time.Since(start))
	}
	n := chunks.Load()
	time.Sleep(50 * time.Millisecond)
	if chunks.Load() != n {
		t.Errorf("OnBody ran after Do returned")
	}
	select {
	case <-ended:
	case <-time.After(waitLimit):
		t.Fatal("the server did not see the client go")
	}

	// A context with a deadline: context.DeadlineExceeded.
	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	resp, err = r.c.Do(dctx, &Request{URL: srv.URL + "/stream2"})
	if curlErr(t, resp, err); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want context.DeadlineExceeded", err)
	}
	// Already cancelled: fails at once, on the loop.
	resp, err = r.c.Do(ctx, &Request{URL: srv.URL + "/never"})
	if curlErr(t, resp, err); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
	// Cancelled while queued behind WithMaxClients.
	q := newRig(t, WithMaxClients(1))
	q.on(func() { q.c.Fetch(&Request{URL: srv.URL + "/hog"}, nil) })
	qctx, qcancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); qcancel() }()
	resp, err = q.c.Do(qctx, &Request{URL: srv.URL + "/queued"})
	if curlErr(t, resp, err); !errors.Is(err, context.Canceled) {
		t.Fatalf("queued: %v, want context.Canceled", err)
	}
	var queued int
	q.on(func() { queued = q.c.queuedCount() })
	if queued != 0 {
		t.Errorf("%d transfers still queued", queued)
	}
}

// tally records the callbacks of a set of fetches.
type tally struct {
	mu    sync.Mutex
	calls map[string]int
	errs  map[string]error
	done  chan struct{}
	want  int
	total int
}

func newTally(want int) *tally {
	return &tally{calls: map[string]int{}, errs: map[string]error{}, done: make(chan struct{}), want: want}
}

func (y *tally) cb(name string) func(*Response, error) {
	return func(_ *Response, err error) {
		y.mu.Lock()
		defer y.mu.Unlock()
		y.calls[name]++
		y.errs[name] = err
		y.total++
		if y.total == y.want {
			close(y.done)
		}
	}
}

// wait waits for every callback, then a little more, and checks that each
// ran exactly once with an error matching target.
func (y *tally) check(t *testing.T, target error) {
	t.Helper()
	select {
	case <-y.done:
	case <-time.After(waitLimit):
		t.Fatalf("%d of %d callbacks ran", y.total, y.want)
	}
	time.Sleep(50 * time.Millisecond) // a second call would show now
	y.mu.Lock()
	defer y.mu.Unlock()
	for name, n := range y.calls {
		if n != 1 {
			t.Errorf("%s: %d callbacks", name, n)
		}
		if !errors.Is(y.errs[name], target) {
			t.Errorf("%s: %v, want %v", name, y.errs[name], target)
		}
	}
	if len(y.calls) != y.want {
		t.Errorf("%d transfers called back, want %d", len(y.calls), y.want)
	}
}

// gatedServer holds every request until the client goes away (or the
// test ends), and counts arrivals.
func gatedServer(t *testing.T) (string, *atomic.Int32) {
	var arrived atomic.Int32
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-r.Context().Done()
	}))
	return srv.URL, &arrived
}

// Close with transfers in flight and queued: each gets exactly one
// ErrClientClosed; later fetches fail the same way; the connections go.
func TestCloseWithTransfersQueuedAndInFlight(t *testing.T) {
	url, arrived := gatedServer(t)
	fds := openFDs(t)
	r := newRig(t, WithMaxClients(2))
	y := newTally(6)
	r.on(func() {
		for i := range 6 {
			r.c.Fetch(&Request{URL: fmt.Sprintf("%s/%d", url, i)}, y.cb(fmt.Sprint(i)))
		}
	})
	settle(t, "two requests in flight", func() bool { return arrived.Load() == 2 })
	var active, queued int
	r.on(func() { active, queued = r.c.activeCount(), r.c.queuedCount() })
	if active != 2 || queued != 4 {
		t.Fatalf("%d active, %d queued; want 2 and 4", active, queued)
	}
	r.c.Close() // from this goroutine: the teardown runs on the loop
	y.check(t, ErrClientClosed)
	if err := r.c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	resp, err := r.do(&Request{URL: url})
	if curlErr(t, resp, err); !errors.Is(err, ErrClientClosed) {
		t.Errorf("Fetch after Close: %v", err)
	}
	var recursive int64
	r.on(func() { recursive = r.c.recursiveCalls() })
	if recursive != 0 {
		t.Errorf("%d recursive libcurl calls", recursive)
	}
	// libcurl's connections are closed (the handlers saw them go).
	settle(t, "the fds to be released", func() bool { return openFDs(t) <= fds+2 }) // +2: the loop's epoll and eventfd
}

// Close from inside callbacks: from a Fetch callback (at once) and from
// OnBody (in the next loop iteration); nothing calls libcurl recursively.
func TestCloseFromCallbacks(t *testing.T) {
	url, _ := gatedServer(t)
	fast, _ := newServer(t, http.HandlerFunc(echoHandler))
	streaming, _ := streamServer(t)

	// From a Fetch callback: the other transfer in flight fails at once.
	r := newRig(t)
	y := newTally(2)
	r.on(func() {
		r.c.Fetch(&Request{URL: url}, y.cb("gated"))
		r.c.Fetch(&Request{URL: fast.URL}, func(resp *Response, err error) {
			if err != nil {
				t.Errorf("fast: %v", err)
			}
			r.c.Close()
			y.mu.Lock()
			if y.calls["gated"] != 1 {
				t.Error("Close on the loop returned before the transfer in flight was called back")
			}
			y.mu.Unlock()
			y.cb("closer")(nil, ErrClientClosed)
		})
	})
	y.check(t, ErrClientClosed)

	// From OnBody.
	r2 := newRig(t)
	y2 := newTally(2)
	r2.on(func() {
		r2.c.Fetch(&Request{URL: url}, y2.cb("gated"))
		r2.c.Fetch(&Request{URL: streaming.URL, OnBody: func([]byte) error {
			r2.c.Close()
			return nil
		}}, y2.cb("streaming"))
	})
	y2.check(t, ErrClientClosed)
	var recursive int64
	r2.on(func() { recursive = r2.c.recursiveCalls() })
	if recursive != 0 {
		t.Errorf("%d recursive libcurl calls", recursive)
	}
}

// Closing the loop with transfers in flight and queued: each gets exactly
// one error wrapping ioloop.ErrClosed, on the goroutine closing the loop,
// before Close returns; a Fetch afterwards fails before it returns.
func TestLoopCloseWithTransfersInFlight(t *testing.T) {
	url, arrived := gatedServer(t)
	fds := openFDs(t)
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	c, err := NewClient(l, WithMaxClients(3))
	if err != nil {
		t.Fatal(err)
	}
	y := newTally(5)
	for i := range 5 {
		c.Fetch(&Request{URL: fmt.Sprintf("%s/%d", url, i)}, y.cb(fmt.Sprint(i)))
	}
	settle(t, "three requests in flight", func() bool { return arrived.Load() == 3 })
	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-y.done:
	default:
		t.Fatal("Close returned before every callback ran")
	}
	y.check(t, ioloop.ErrClosed)
	<-done
	var after error
	returned := false
	c.Fetch(&Request{URL: url}, func(_ *Response, err error) {
		if returned {
			t.Error("a Fetch after the loop closed called back after returning")
		}
		after = err
	})
	returned = true
	if !errors.Is(after, ioloop.ErrClosed) {
		t.Errorf("Fetch after the loop closed: %v", after)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after the loop closed: %v", err)
	}
	settle(t, "the fds to be released", func() bool { return openFDs(t) <= fds })
}

// Fetch, FetchContext cancellation and Close from inside libcurl's
// callbacks never make a recursive multi call: the fetches run in the
// next iteration and succeed.
func TestRecursionSafety(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	gated, _ := gatedServer(t)
	r := newRig(t)
	y := newTally(4)
	ok := func(name string) func(*Response, error) {
		cb := y.cb(name)
		return func(resp *Response, err error) {
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("%s: %v", name, err)
			}
			cb(resp, err)
		}
	}
	var once1, once2 sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	r.on(func() {
		r.c.Fetch(&Request{URL: srv.URL + "/outer", Body: bytes.Repeat([]byte("b"), 100_000),
			OnHeader: func([]byte) error {
				once1.Do(func() { r.c.Fetch(&Request{URL: srv.URL + "/from-header"}, ok("from-header")) })
				return nil
			},
			OnBody: func([]byte) error {
				once2.Do(func() {
					r.c.Fetch(&Request{URL: srv.URL + "/from-body"}, ok("from-body"))
					r.c.FetchContext(ctx, &Request{URL: gated + "/cancelled"}, func(_ *Response, err error) {
						if !errors.Is(err, context.Canceled) {
							t.Errorf("cancelled: %v", err)
						}
						y.cb("cancelled")(nil, nil)
					})
					cancel()
				})
				return nil
			},
		}, ok("outer"))
	})
	select {
	case <-y.done:
	case <-time.After(waitLimit):
		t.Fatal("not every transfer completed")
	}
	var recursive int64
	r.on(func() { recursive = r.c.recursiveCalls() })
	if recursive != 0 {
		t.Fatalf("%d multi calls returned CURLM_RECURSIVE_API_CALL", recursive)
	}
}

// The request Timeout counts the time spent queued behind WithMaxClients:
// a request that never gets a slot fails on time without reaching the
// server, and one that starts late has only what is left.
func TestTimeoutCountsQueueTime(t *testing.T) {
	var seen sync.Map
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path, true)
		switch r.URL.Path {
		case "/hold-1s":
			time.Sleep(time.Second)
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	r := newRig(t, WithMaxClients(1))

	// Never starts: the slot is held by a transfer that does not end.
	r.on(func() { r.c.Fetch(&Request{URL: srv.URL + "/slow"}, nil) })
	start := time.Now()
	resp, err := r.do(&Request{URL: srv.URL + "/never", Timeout: 300 * time.Millisecond})
	checkTimeout(t, "queued", resp, err, time.Since(start), 300*time.Millisecond)
	if err != nil && !strings.Contains(err.Error(), "queued") {
		t.Errorf("the error does not say it was queued: %v", err)
	}
	if _, ok := seen.Load("/never"); ok {
		t.Error("the queued request reached the server")
	}
	r.c.Close()

	// Starts after 1 s with 1 s left of 2 s: times out at 2 s, not 3 s.
	r2 := newRig(t, WithMaxClients(1))
	r2.on(func() { r2.c.Fetch(&Request{URL: srv.URL + "/hold-1s"}, nil) })
	start = time.Now()
	resp, err = r2.do(&Request{URL: srv.URL + "/slow", Timeout: 2 * time.Second})
	elapsed := time.Since(start)
	checkTimeout(t, "started late", resp, err, elapsed, 2*time.Second)
	if elapsed > 2800*time.Millisecond {
		t.Errorf("took %v: the queue time was not counted", elapsed)
	}
}

// With WithMaxClients(1), transfers start in the order they were fetched,
// including one fetched from a callback while others wait; one that times
// out while queued does not hold up the rest.
func TestMaxClientsFIFO(t *testing.T) {
	var mu sync.Mutex
	var arrivals []string
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, r.URL.Path)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}))
	r := newRig(t, WithMaxClients(1))
	var order []string
	done := make(chan struct{})
	r.on(func() {
		for i := range 10 {
			name := fmt.Sprintf("/%d", i)
			req := &Request{URL: srv.URL + name}
			if i == 3 {
				req.Timeout = time.Millisecond // expires while queued
			}
			r.c.Fetch(req, func(_ *Response, err error) {
				if i == 3 {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("/3: %v, want a timeout", err)
					}
					return
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				order = append(order, name)
				if i == 0 {
					r.c.Fetch(&Request{URL: srv.URL + "/10"}, func(_ *Response, err error) {
						order = append(order, "/10")
						close(done)
					})
				}
			})
		}
	})
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("not every transfer completed")
	}
	want := "/0 /1 /2 /4 /5 /6 /7 /8 /9 /10"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("callbacks in order %s, want %s", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(arrivals, " "); got != want {
		t.Errorf("server saw %s, want %s", got, want)
	}
}

// A transfer that had already failed when Close came keeps its own error.
func TestCloseKeepsEarlierFailures(t *testing.T) {
	r := newRig(t)
	var got error
	done := make(chan struct{})
	r.on(func() {
		r.c.Fetch(&Request{URL: ""}, func(_ *Response, err error) { got = err; close(done) })
		r.c.Close()
	})
	<-done
	if !errors.Is(got, ErrInvalidRequest) || errors.Is(got, ErrClientClosed) {
		t.Fatalf("%v, want its own ErrInvalidRequest", got)
	}
}

// Do waits for a stopped loop and completes once it runs again.
func TestDoWaitsForAStoppedLoop(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	r.l.Stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the loop did not stop")
	}
	type res struct {
		resp *Response
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		resp, err := r.c.Do(context.Background(), &Request{URL: srv.URL})
		ch <- res{resp, err}
	}()
	select {
	case <-ch:
		t.Fatal("Do returned while the loop was stopped")
	case <-time.After(100 * time.Millisecond):
	}
	go func() { r.done <- r.l.Start() }()
	select {
	case x := <-ch:
		mustOK(t, x.resp, x.err)
	case <-time.After(waitLimit):
		t.Fatal("Do did not complete once the loop ran again")
	}
}
