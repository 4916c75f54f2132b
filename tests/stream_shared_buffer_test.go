//go:build linux

package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// A loop's streams read into one shared buffer, and only what a read
// callback leaves unconsumed is copied into a buffer of the stream's own
// (see stream_shared.go). These tests go after what that could break:
// bytes of one stream showing up in another, a stream's leftover bytes
// overwritten while other streams read, reads started from inside another
// stream's callback, callbacks that keep the slice they were given, and
// two loops (two shared buffers) running at once.

// sharedBufferWorkload drives n streams of each kind on loop l. Every
// stream's peer writes its own pseudo-random content in random chunks
// with random pauses, then closes; the stream reads it back with a random
// sequence of ReadUntil (delimiters that occur often), ReadBytes and
// ReadSome, some issued at once from the callback, some later from a
// timer (so unconsumed bytes wait in the stream's own buffer while the
// other streams read), and some from inside the next callback of another
// stream. Every callback also looks at the slice the previous callback
// (of any stream) was given and kept, which the API calls invalid by
// then: it must not crash, and the race detector must see nothing. At
// EOF, ReadUntilClose takes the rest. It returns a function that waits
// for every stream and checks that each one delivered exactly its
// peer's bytes, in order, and that every ReadUntil result ended with its
// delimiter and held no earlier one.
func sharedBufferWorkload(t *testing.T, l *ioloop.IOLoop, n int, seed int64) (check func()) {
	t.Helper()
	type streamCase struct {
		name  string
		want  []byte
		got   bytes.Buffer
		rng   *rand.Rand
		s     *ioloop.Stream
		bad   error
		done  chan struct{}
		reads int
	}
	// Loop goroutine only, like every stream method.
	var (
		retained []byte   // the last slice any callback was given
		parked   []func() // next reads waiting for another stream's callback
		sum      byte     // keeps the look at retained from being optimized out
		delims   = []string{"a", "\n", "ab", "\r\n", "ba"}
		alphabet = []byte("ab\r\nxyz")
	)
	var cases []*streamCase
	for _, kind := range pairKinds {
		for i := range n {
			rng := rand.New(rand.NewSource(seed + int64(len(cases))))
			want := make([]byte, 8<<10+rng.Intn(56<<10))
			for j := range want {
				want[j] = alphabet[rng.Intn(len(alphabet))]
			}
			fd, peer := streamPair(t, kind)
			c := &streamCase{name: fmt.Sprintf("%s/%d", kind, i), want: want, rng: rng, done: make(chan struct{})}
			cases = append(cases, c)
			c.s = newStreamOnLoop(t, l, fd)
			go func(seed int64) { // the peer: random chunks, random pauses, then EOF
				wr := rand.New(rand.NewSource(seed))
				for p := want; len(p) > 0; {
					k := min(len(p), 1+wr.Intn(3000))
					if _, err := peer.Write(p[:k]); err != nil {
						t.Errorf("peer write: %v", err)
						return
					}
					p = p[k:]
					if wr.Intn(4) == 0 {
						time.Sleep(time.Duration(wr.Intn(300)) * time.Microsecond)
					}
				}
				_ = peer.Close()
			}(seed + 1000 + int64(len(cases)))
		}
	}
	for _, c := range cases {
		var next func()
		fail := func(err error) {
			if c.bad == nil {
				c.bad = err
			}
			close(c.done)
		}
		look := func(p []byte) {
			for _, b := range retained { // invalid by now: may hold anything, must not crash
				sum += b
			}
			retained = p
			if len(parked) > 0 && c.rng.Intn(2) == 0 {
				run := parked[0]
				parked = parked[1:]
				run() // a read on another stream, started from this callback
			}
		}
		rest := func(p []byte, err error) {
			look(p)
			c.got.Write(p)
			if err != nil {
				fail(fmt.Errorf("ReadUntilClose: %w", err))
				return
			}
			close(c.done)
		}
		// after handles a read's result: nil means go on with the next one.
		after := func(p []byte, err error) bool {
			look(p)
			c.got.Write(p)
			c.reads++
			if err == nil {
				return true
			}
			if !errors.Is(err, io.EOF) {
				fail(err)
				return false
			}
			if err := c.s.ReadUntilClose(rest); err != nil {
				fail(fmt.Errorf("ReadUntilClose after EOF: %w", err))
			}
			return false
		}
		schedule := func() {
			switch c.rng.Intn(8) {
			case 0: // later, from a timer: the leftover waits in the stream's own buffer
				l.CallLater(time.Duration(c.rng.Intn(500))*time.Microsecond, next)
			case 1: // from another stream's callback
				parked = append(parked, next)
			default:
				next()
			}
		}
		next = func() {
			var err error
			switch c.rng.Intn(3) {
			case 0:
				delim := []byte(delims[c.rng.Intn(len(delims))])
				err = c.s.ReadUntil(delim, 0, func(p []byte, err error) {
					if err == nil && bytes.Index(p, delim) != len(p)-len(delim) {
						fail(fmt.Errorf("ReadUntil(%q) gave %q", delim, p))
						return
					}
					if after(p, err) {
						schedule()
					}
				})
			case 1:
				k := 1 + c.rng.Intn(5000)
				err = c.s.ReadBytes(k, func(p []byte, err error) {
					if err == nil && len(p) != k {
						fail(fmt.Errorf("ReadBytes(%d) gave %d bytes", k, len(p)))
						return
					}
					if after(p, err) {
						schedule()
					}
				})
			default:
				err = c.s.ReadSome(func(p []byte, err error) {
					if err == nil && len(p) == 0 {
						fail(errors.New("ReadSome gave nothing"))
						return
					}
					if after(p, err) {
						schedule()
					}
				})
			}
			switch {
			case errors.Is(err, io.EOF):
				// The read side is over and what is buffered cannot
				// satisfy this read: take the rest.
				if err := c.s.ReadUntilClose(rest); err != nil {
					fail(fmt.Errorf("ReadUntilClose after EOF: %w", err))
				}
			case err != nil:
				fail(fmt.Errorf("starting read %d: %w", c.reads, err))
			}
		}
		onLoop(t, l, next)
	}
	// Reads parked for another stream's callback must not wait forever
	// once the other streams are done: a timer runs what is left.
	var flush func()
	flush = func() {
		for len(parked) > 0 {
			run := parked[0]
			parked = parked[1:]
			run()
		}
		l.CallLater(time.Millisecond, flush)
	}
	onLoop(t, l, flush)
	return func() {
		t.Helper()
		for _, c := range cases {
			select {
			case <-c.done:
			case <-time.After(testTimeout):
				t.Fatalf("%s: not finished after %d reads", c.name, c.reads)
			}
		}
		onLoop(t, l, func() {
			for _, c := range cases {
				switch {
				case c.bad != nil:
					t.Errorf("%s: %v", c.name, c.bad)
				case !bytes.Equal(c.got.Bytes(), c.want):
					got := c.got.Bytes()
					i := 0
					for i < len(got) && i < len(c.want) && got[i] == c.want[i] {
						i++
					}
					t.Errorf("%s: delivered %d bytes, want %d; first difference at byte %d", c.name, len(got), len(c.want), i)
				}
			}
			_ = sum
		})
	}
}

func TestStreamSharedReadBufferKeepsStreamsApart(t *testing.T) {
	l, _ := runningLoop(t)
	sharedBufferWorkload(t, l, 16, 1)()
}

func TestStreamSharedReadBufferTwoLoops(t *testing.T) {
	// Two loops on two goroutines, each with its own shared buffer: under
	// -race, any sharing between them is a reported race.
	var checks []func()
	for i := range 2 {
		l, _ := runningLoop(t)
		checks = append(checks, sharedBufferWorkload(t, l, 6, int64(100*(i+1))))
	}
	for _, check := range checks {
		check()
	}
}
