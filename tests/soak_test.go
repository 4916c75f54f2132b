//go:build linux

package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoakEchoExample churns connections through the echo example (built
// and run as a process, as the benchmarks run it) with a mix of
// behaviours: full conversations, half-closes, resets (SO_LINGER 0),
// early disconnects with data in flight, and connect-then-close. Every
// byte echoed on a conversation that completes is compared with what was
// sent. Afterwards the server's only socket must be its listener, its
// other fds exactly what they were before the churn (bar the Go runtime's
// own netpoller, created lazily), its thread count within soakThreadSlack
// and its RSS within soakRSSSlack of the level measured after a warm-up.
//
// Short by default (CI): soakDefaultConns connections or soakDefaultTime,
// whichever comes first. Long mode for manual runs:
//
//	IOLOOP_SOAK_CONNS=100000 IOLOOP_SOAK_TIME=10m go test -run '^TestSoakEchoExample$' -v ./tests/
//
// IOLOOP_SOAK_WORKERS sets the concurrent clients (default 32).
func TestSoakEchoExample(t *testing.T) {
	conns := envInt(t, "IOLOOP_SOAK_CONNS", soakDefaultConns)
	limit := envDuration(t, "IOLOOP_SOAK_TIME", soakDefaultTime)
	workers := envInt(t, "IOLOOP_SOAK_WORKERS", 32)

	e := startExample(t, "echo")
	pid := e.cmd.Process.Pid

	// Warm up with the same mix, so the allocator and the runtime reach
	// their working set before the baseline is taken.
	warm := churn(t, e.addr, min(conns/5+1, 500), workers, limit, 1)
	warm.check(t)
	waitIdle(t, pid)
	// The baseline is taken after the warm-up, once every connection is
	// gone and the heap has grown to its working size.
	base := readProc(t, pid)

	start := time.Now()
	st := churn(t, e.addr, conns, workers, limit, 2)
	elapsed := time.Since(start)
	st.check(t)
	waitIdle(t, pid)
	after := readProc(t, pid)

	t.Logf("soak: %d connections in %v (%d workers): %d full (%d rounds), %d half-closed, %d reset (SO_LINGER 0), %d early disconnects, %d connect+close; %d bytes echoed and verified",
		st.total(), elapsed.Round(time.Millisecond), workers, st.full.Load(), st.rounds.Load(), st.half.Load(), st.reset.Load(), st.early.Load(), st.bare.Load(), st.verified.Load())
	t.Logf("server: fds %d -> %d; threads %d -> %d; RSS %d KiB -> %d KiB",
		base.fds, after.fds, base.threads, after.threads, base.rssKB, after.rssKB)
	if extra := newFDs(base, after); len(extra) > 0 && !isRuntimeNetpoller(extra) {
		t.Errorf("server fds: %d before the churn, %d after; new: %v", base.fds, after.fds, extra)
	}
	if after.threads > base.threads+soakThreadSlack {
		t.Errorf("server threads grew from %d to %d (slack %d)", base.threads, after.threads, soakThreadSlack)
	}
	if after.rssKB > base.rssKB+soakRSSSlack>>10 {
		t.Errorf("server RSS grew from %d KiB to %d KiB (slack %d KiB)", base.rssKB, after.rssKB, soakRSSSlack>>10)
	}
	if st.total() < int64(min(conns, 1000)) {
		t.Errorf("only %d connections in %v: too few to mean anything", st.total(), limit)
	}
}

const (
	soakDefaultConns = 3000
	soakDefaultTime  = 15 * time.Second
	// Tolerances after the churn, relative to the post-warm-up level. fds
	// must be back exactly. Go keeps idle threads, and a few more may be
	// started under load (for GC workers while the loop thread sits in
	// epoll_wait), never one per connection. RSS: the heap's garbage and
	// the scavenger's lag, not a per-connection cost (a 200-byte leak per
	// connection would exceed it in the 100,000-connection run).
	soakThreadSlack = 4
	soakRSSSlack    = 16 << 20
)

// soakStats counts what the clients did.
type soakStats struct {
	full, half, reset, early, bare atomic.Int64 // connections by behaviour
	rounds, verified               atomic.Int64 // echo rounds and bytes compared
	failures                       atomic.Int64
	mu                             sync.Mutex
	errs                           []error
}

func (st *soakStats) total() int64 {
	return st.full.Load() + st.half.Load() + st.reset.Load() + st.early.Load() + st.bare.Load()
}

func (st *soakStats) fail(err error) {
	st.failures.Add(1)
	st.mu.Lock()
	if len(st.errs) < 5 {
		st.errs = append(st.errs, err)
	}
	st.mu.Unlock()
}

func (st *soakStats) check(t *testing.T) {
	t.Helper()
	if n := st.failures.Load(); n > 0 {
		t.Fatalf("%d of %d connections failed; first: %v", n, st.total(), errors.Join(st.errs...))
	}
}

// churn runs n connections (or until limit) over workers goroutines.
func churn(t *testing.T, addr string, n, workers int, limit time.Duration, seed int64) *soakStats {
	t.Helper()
	st := &soakStats{}
	var next atomic.Int64
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || time.Now().After(deadline) {
					return
				}
				rng := rand.New(rand.NewSource(seed<<32 | i))
				if err := soakConn(addr, rng, st, buf); err != nil {
					st.fail(fmt.Errorf("connection %d (seed %d/%d): %w", i, seed, i, err))
				}
			}
		}()
	}
	wg.Wait()
	return st
}

// soakConn is one client connection with a random behaviour.
func soakConn(addr string, rng *rand.Rand, st *soakStats, buf []byte) error {
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	msg := func() []byte {
		m := make([]byte, 1+rng.Intn(16<<10))
		rng.Read(m)
		return m
	}
	switch k := rng.Intn(100); {
	case k < 50: // conversation: 1 to 4 rounds, each echo checked
		rounds := 1 + rng.Intn(4)
		for r := 0; r < rounds; r++ {
			m := msg()
			if _, err := c.Write(m); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, buf[:len(m)]); err != nil {
				return fmt.Errorf("round %d: %w", r, err)
			}
			if !bytes.Equal(buf[:len(m)], m) {
				return fmt.Errorf("round %d: echo differs", r)
			}
			st.verified.Add(int64(len(m)))
		}
		st.rounds.Add(int64(rounds))
		st.full.Add(1)
	case k < 65: // half-close: the echo of everything, then EOF
		var sent []byte
		for r := rng.Intn(3); r >= 0; r-- {
			m := msg()
			if _, err := c.Write(m); err != nil {
				return err
			}
			sent = append(sent, m...)
		}
		if err := tc.CloseWrite(); err != nil {
			return err
		}
		got, err := io.ReadAll(c)
		if err != nil {
			return fmt.Errorf("after half-close: %w", err)
		}
		if !bytes.Equal(got, sent) {
			return fmt.Errorf("after half-close: %d bytes back of %d sent (prefix ok: %v)", len(got), len(sent), bytes.HasPrefix(sent, got))
		}
		st.verified.Add(int64(len(got)))
		st.half.Add(1)
	case k < 80: // reset mid-conversation
		m := msg()
		if _, err := c.Write(m); err != nil {
			return err
		}
		part := rng.Intn(len(m) + 1)
		if _, err := io.ReadFull(c, buf[:part]); err != nil {
			return err
		}
		if !bytes.Equal(buf[:part], m[:part]) {
			return errors.New("echo before reset differs")
		}
		st.verified.Add(int64(part))
		_ = tc.SetLinger(0)
		st.reset.Add(1)
	case k < 90: // disconnect with the echo still in flight
		if _, err := c.Write(msg()); err != nil {
			return err
		}
		st.early.Add(1)
	default: // connect and leave
		st.bare.Add(1)
	}
	return nil
}

// procInfo is what the soak and exhaustion tests watch in a server.
type procInfo struct {
	fds     int
	links   map[string]string // fd number -> what it points to
	sockets int
	threads int
	rssKB   int
}

// readProc reads a process's open fds, thread count and RSS from /proc.
func readProc(t *testing.T, pid int) procInfo {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	info := procInfo{fds: len(entries), links: map[string]string{}, threads: -1, rssKB: -1}
	for _, e := range entries {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		info.links[e.Name()] = l
		if strings.HasPrefix(l, "socket:") {
			info.sockets++
		}
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Threads":
			info.threads, _ = strconv.Atoi(f[0])
		case "VmRSS":
			info.rssKB, _ = strconv.Atoi(f[0])
		}
	}
	if info.threads < 0 || info.rssKB < 0 {
		t.Fatalf("/proc/%d/status without Threads or VmRSS", pid)
	}
	return info
}

// newFDs lists the descriptors open in after that were not in before.
func newFDs(before, after procInfo) []string {
	var extra []string
	for fd, l := range after.links {
		if before.links[fd] != l {
			extra = append(extra, fd+" -> "+l)
		}
	}
	return extra
}

// isRuntimeNetpoller reports whether the new descriptors are the Go
// runtime's own poller (one epoll and its eventfd), which the runtime
// creates lazily the first time it arms a timer, e.g. for the GC's
// scavenger: not something a connection left behind.
func isRuntimeNetpoller(extra []string) bool {
	var ep, ev int
	for _, e := range extra {
		switch {
		case strings.HasSuffix(e, "anon_inode:[eventpoll]"):
			ep++
		case strings.HasSuffix(e, "anon_inode:[eventfd]"):
			ev++
		default:
			return false
		}
	}
	return ep == 1 && ev == 1
}

// waitIdle waits until the server's only socket is its listener (its
// streams close a moment after their clients go).
func waitIdle(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		got := readProc(t, pid).sockets
		if got == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still has %d sockets open, want only its listener: a leak, or a stream that never closed", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}
