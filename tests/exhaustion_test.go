//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Resource exhaustion: a client that never reads, and a client that sends
// its request a byte at a time. Running out of descriptors (EMFILE, with
// the server's CPU measured while starved) is TestServerSurvivesEMFILE.

// emfileMaxCPU bounds the child's CPU share while starved: a behaviour
// bound (a spinning accept loop takes a whole core), not a speed target.
const emfileMaxCPU = 0.20

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces: fields start after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	const userHZ = 100 // USER_HZ: the clock tick /proc reports in, 100 on every Linux ABI Go supports
	return time.Duration(utime+stime) * time.Second / userHZ
}

// TestWriteQueueCapBoundsMemoryForAClientThatNeverReads: a server that
// produces 16 MiB for a client that does not read. With a 256 KiB write
// queue cap it must get ErrWriteQueueFull (and nothing queued past the
// cap), its heap must stay within writeCapHeapSlack of where it was, and
// once the client reads, OnDrain resumes the producer and every byte
// arrives, in order.
func TestWriteQueueCapBoundsMemoryForAClientThatNeverReads(t *testing.T) {
	checkNoLeaks(t)
	l, _ := runningLoop(t)
	const (
		queueCap = 256 << 10
		total    = 16 << 20
		chunk    = 32 << 10
	)
	type state struct {
		full     int // ErrWriteQueueFull returned
		maxQueue int
		sent     int
	}
	var st state
	blocked := make(chan state, 1)
	errs := make(chan error, 1)
	sv := serve(t, l, func(s *ioloop.Stream, _ net.Addr) {
		buf := make([]byte, chunk)
		var produce func()
		produce = func() {
			for st.sent < total {
				fillPattern(buf, st.sent)
				err := s.Write(buf, nil)
				if errors.Is(err, ioloop.ErrWriteQueueFull) {
					if st.full++; st.full == 1 {
						blocked <- st
					}
					s.OnDrain(produce)
					return
				}
				if err != nil {
					errs <- err
					return
				}
				st.sent += chunk
				st.maxQueue = max(st.maxQueue, s.WriteQueueLen())
			}
			s.OnDrain(nil)
			s.CloseAfterFlush()
		}
		produce()
	}, ioloop.WithStreamOptions(ioloop.WithMaxWriteQueue(queueCap)))

	heap0 := heapAfterGC()
	c := dial(t, "tcp", sv.Addr().String())
	var first state
	select {
	case first = <-blocked:
	case err := <-errs:
		t.Fatalf("Write: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("the producer never hit the write queue cap")
	}
	heap1 := heapAfterGC()
	t.Logf("never-reading client: ErrWriteQueueFull after %d KiB accepted (queue at most %d KiB, cap %d KiB); heap %d KiB -> %d KiB",
		first.sent>>10, first.maxQueue>>10, queueCap>>10, heap0>>10, heap1>>10)
	if first.maxQueue > queueCap {
		t.Fatalf("write queue reached %d bytes; cap %d", first.maxQueue, queueCap)
	}
	if first.sent >= total/2 {
		t.Fatalf("%d bytes accepted before the cap bit: the kernel cannot hold that much", first.sent)
	}
	if heap1 > heap0+writeCapHeapSlack {
		t.Fatalf("heap grew by %d KiB for a client that does not read; want < %d KiB", (heap1-heap0)>>10, writeCapHeapSlack>>10)
	}

	// Now read: everything arrives, in order, then EOF.
	r := bufio.NewReaderSize(c, 64<<10)
	got := make([]byte, chunk)
	want := make([]byte, chunk)
	for off := 0; off < total; off += chunk {
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("at offset %d: %v", off, err)
		}
		fillPattern(want, off)
		if !bytes.Equal(got, want) {
			t.Fatalf("data differs at offset %d", off)
		}
	}
	if n, err := r.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("after %d bytes: %d more, %v; want EOF", total, n, err)
	}
	onLoop(t, l, func() {
		if st.sent != total || st.maxQueue > queueCap {
			t.Errorf("sent %d of %d, queue peaked at %d", st.sent, total, st.maxQueue)
		}
		t.Logf("ErrWriteQueueFull returned %d times over %d MiB", st.full, total>>20)
	})
}

// writeCapHeapSlack: the queue cap plus the read buffer and bookkeeping,
// with room for the race detector's shadow allocations.
const writeCapHeapSlack = 4 << 20

func heapAfterGC() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}

// fillPattern fills p with the bytes at offset off of a stream whose byte
// i is i mod 251 (a prime, so the pattern does not line up with chunks).
func fillPattern(p []byte, off int) {
	for i := range p {
		p[i] = byte((off + i) % 251)
	}
}

// TestEchoExampleBoundsMemoryForClientsThatNeverRead: clients that send
// as fast as they can and never read. The echo example stops reading while
// its write queue is not empty (OnDrain), so the clients must block, the
// kernel's buffers holding the difference, and the server's RSS must stay
// within echoRSSSlack.
func TestEchoExampleBoundsMemoryForClientsThatNeverRead(t *testing.T) {
	e := startExample(t, "echo")
	pid := e.cmd.Process.Pid
	if err := echoRounds(dial(t, "tcp", e.addr), rand.New(rand.NewSource(1)), 2, 64<<10); err != nil {
		t.Fatal(err)
	}
	base := readProc(t, pid)
	const (
		clients = 4
		attempt = 256 << 20 // what each client tries to push
		block   = 1 << 20
	)
	written := make([]int, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		c := dial(t, "tcp", e.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, block)
			for written[i] < attempt {
				// No progress for this long means the server stopped reading.
				_ = c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
				n, err := c.Write(buf)
				written[i] += n
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	after := readProc(t, pid)
	t.Logf("never-reading echo clients: %v bytes absorbed before they blocked; server RSS %d KiB -> %d KiB",
		written, base.rssKB, after.rssKB)
	for i, n := range written {
		if n >= attempt {
			t.Errorf("client %d pushed all %d MiB without blocking: the server buffers without bound", i, attempt>>20)
		}
	}
	if after.rssKB > base.rssKB+echoRSSSlack>>10 {
		t.Errorf("server RSS grew from %d KiB to %d KiB; want < +%d KiB", base.rssKB, after.rssKB, echoRSSSlack>>10)
	}
}

// echoRSSSlack: each blocked connection holds at most one read buffer
// (64 KiB) and one write queue's worth in the server; the rest waits in
// the kernel.
const echoRSSSlack = 16 << 20

// TestHelloExampleClosesSlowloris: clients that send a request head one
// byte every slowlorisEvery never complete it; the hello server's header
// timeout (-timeout, which bounds the whole head, not the gap between
// bytes) must close each of them with no answer, while a normal client is
// still served, and leave no socket behind.
func TestHelloExampleClosesSlowloris(t *testing.T) {
	const timeout = 500 * time.Millisecond
	e := startExample(t, "hello", "-timeout", timeout.String())
	pid := e.cmd.Process.Pid
	const (
		clients  = 20
		maxBytes = 50 // 50 bytes at slowlorisEvery: 10 s, far past the timeout
	)
	type result struct {
		sent   int
		answer []byte
		err    error
		took   time.Duration
	}
	results := make(chan result, clients)
	for i := 0; i < clients; i++ {
		c := dial(t, "tcp", e.addr)
		go func() {
			start := time.Now()
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\nX-Slow: ")); err != nil {
				results <- result{err: err}
				return
			}
			closed := make(chan result, 1)
			go func() {
				b, err := io.ReadAll(c)
				closed <- result{answer: b, err: err, took: time.Since(start)}
			}()
			for sent := 0; ; sent++ {
				select {
				case r := <-closed:
					r.sent = sent
					results <- r
					return
				case <-time.After(slowlorisEvery):
				}
				if sent == maxBytes {
					results <- result{sent: sent, err: errors.New("still open")}
					return
				}
				_, _ = c.Write([]byte("a")) // an error shows up in ReadAll
			}
		}()
	}
	// The server keeps serving others meanwhile.
	c := dial(t, "tcp", e.addr)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, c, len(helloOK)); string(got) != helloOK {
		t.Fatalf("normal client during the attack: %q", got)
	}
	_ = c.Close()
	var longest time.Duration
	for i := 0; i < clients; i++ {
		r := recv(t, results, "slowloris client")
		if r.sent >= maxBytes || (r.err != nil && !isReset(r.err)) {
			t.Fatalf("slowloris client after %d bytes: %v", r.sent, r.err)
		}
		if len(r.answer) != 0 {
			t.Fatalf("slowloris client got an answer: %q", r.answer)
		}
		longest = max(longest, r.took)
	}
	waitIdle(t, pid)
	t.Logf("slowloris: %d clients trickling a byte every %v, all closed by the %v header timeout (the last after %v)",
		clients, slowlorisEvery, timeout, longest.Round(time.Millisecond))
}

const slowlorisEvery = 200 * time.Millisecond

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
