//go:build linux && cgo

package ioloop

// FuzzLoopOps drives a real loop through random interleavings of handler
// operations (AddHandler, UpdateHandler, RemoveHandler) and fd-table
// operations (pipe, close, dup, dup2 onto a registered number, write,
// drain), with real loop iterations in between, and checks every result and
// every handler call against a model of the loop's table and of the
// kernel's epoll interest list.
//
// Why a model of the kernel too: epoll watches (open file, fd number)
// pairs, not numbers. Closing a registered fd while a dup of it lives
// leaves the watch behind (epoll(7), "Questions and answers", Q6), and
// dup2 can bring such a watch back under its number. Only by tracking
// those pairs can the test tell an event the loop must drop from one the
// kernel really reports for a registration that is still live.
//
// What the model asserts, on every handler call:
//   - the handler is the one that owns the fd number now: never a removed
//     handler, never a previous owner of the number;
//   - the event comes from a watch tagged with the owner's current
//     registration as it stood when epoll_wait ran, and is a subset of what
//     that file could report, filtered by the interest;
//   - the fd refers to the file the model says it does (fstat: inode and
//     access mode), and a drain reads exactly the bytes written.
//
// After every iteration: a level-triggered event that was ready, wanted and
// untouched during the batch was delivered (nothing is lost). After every
// operation: its error is exactly the documented one (nil, ErrExists,
// ErrNotRegistered, EBADF, EINVAL). At the end: Close leaves no fd open.

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Bounds that keep one execution to a few milliseconds.
const (
	opsMaxOps   = 64 // operations decoded from one input
	opsMaxPipes = 4  // pipes created in one execution
	opsMaxFDs   = 16 // fds the model holds open at once
	opsMaxIters = 3  // loop iterations per run operation
)

// fopCode is the first byte of an operation (modulo fopCount); fopArgs
// gives how many argument bytes follow it.
type fopCode byte

const (
	fopPipe   fopCode = iota // new pipe: two fds
	fopAdd                   // fdSel, events, mode (bit 0: the handler drains what it reads)
	fopUpdate                // fdSel, events
	fopRemove                // fdSel
	fopClose                 // openSel
	fopDup                   // openSel
	fopDup2                  // srcSel, dstSel: dup2 onto an open (often registered) number
	fopWrite                 // pipeSel: make the pipe readable (one byte)
	fopDrain                 // pipeSel: read the pipe empty, outside the loop
	fopRun                   // iterations-1: run real loop iterations
	fopArm                   // fdSel, then one nested op, added to what that fd's handler runs on its next call
	fopCount
)

var fopArgs = [fopCount]int{fopAdd: 3, fopUpdate: 2, fopRemove: 1, fopClose: 1, fopDup: 1,
	fopDup2: 2, fopWrite: 1, fopDrain: 1, fopRun: 1, fopArm: 1}

var fopNames = [fopCount]string{"pipe", "add", "update", "remove", "close", "dup", "dup2",
	"write", "drain", "run", "arm"}

type opsOp struct {
	code   fopCode
	args   [3]byte
	nested *opsOp // fopArm only
}

func (o opsOp) String() string {
	s := fmt.Sprintf("%s%v", fopNames[o.code], o.args[:fopArgs[o.code]])
	if o.nested != nil {
		s += "{" + o.nested.String() + "}"
	}
	return s
}

// opsDecode turns fuzz input into at most opsMaxOps operations; a
// truncated last operation is dropped.
func opsDecode(data []byte) []opsOp {
	var ops []opsOp
	next := func() (opsOp, bool) {
		if len(data) == 0 {
			return opsOp{}, false
		}
		o := opsOp{code: fopCode(data[0] % byte(fopCount))}
		n := fopArgs[o.code]
		if len(data) < 1+n {
			data = nil
			return opsOp{}, false
		}
		copy(o.args[:], data[1:1+n])
		data = data[1+n:]
		return o, true
	}
	for len(ops) < opsMaxOps {
		o, ok := next()
		if !ok {
			break
		}
		if o.code == fopArm {
			inner, ok := next()
			if !ok {
				break
			}
			if inner.code != fopRun && inner.code != fopArm {
				o.nested = &inner
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// Counters over every execution in this process, for RELIABILITY.md.
var opsCounters struct {
	execs, ops, handlerCalls, staleFileCalls, errorsChecked, iterations atomic.Uint64
}

func FuzzLoopOps(f *testing.F) {
	// The committed corpus (testdata/fuzz/FuzzLoopOps) holds the seeds of
	// opsSeeds; these two cover empty and nonsense input.
	f.Add([]byte{})
	f.Add([]byte("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4"))
	f.Cleanup(func() {
		c := &opsCounters
		f.Logf("FuzzLoopOps: %d executions, %d operations, %d loop iterations, %d handler calls "+
			"(%d for a file no longer behind the number, allowed: epoll(7) Q6), %d results checked",
			c.execs.Load(), c.ops.Load(), c.iterations.Load(),
			c.handlerCalls.Load(), c.staleFileCalls.Load(), c.errorsChecked.Load())
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		opsRun(t, opsDecode(data), len(data)%2 == 1)
	})
}

// opsRun executes ops on a fresh loop and model, then closes everything
// (Close(closeAll)) and checks that no fd is left open.
func opsRun(t *testing.T, ops []opsOp, closeAll bool) {
	opsCounters.execs.Add(1)
	before := opsOpenFDs(t)
	logs := &syncBuffer{}
	l, err := New(WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m := &opsModel{t: t, l: l, logs: logs, fds: map[int]int{}, ep: map[opsWatch]int{},
		slots: map[int]*opsSlot{}}
	tornDown := false
	defer func() {
		if !tornDown { // a failed check: release everything quietly
			_ = l.Close(false)
			for fd := range m.fds {
				_ = unix.Close(fd)
			}
		}
	}()
	for _, o := range ops {
		m.exec(o)
	}
	m.teardown(closeAll)
	tornDown = true
	if after := opsOpenFDs(t); after != before {
		t.Fatalf("fd leak: %d open before, %d after\ntrace:\n%s", before, after, m.traceText())
	}
}

// Seeds: named programs, written to testdata/fuzz/FuzzLoopOps by
// `go test -run TestLoopOpsSeedCorpus -update-loopops-seeds` and checked against
// the committed files by every plain `go test`. Selectors index the fd
// numbers in first-use order: after the first fopPipe, 0 is its read end
// and 1 its write end; after the second, 2 and 3.
var opsUpdateSeeds = flag.Bool("update-loopops-seeds", false, "rewrite testdata/fuzz/FuzzLoopOps from opsSeeds")

const (
	opsEvNone, opsEvRead, opsEvWrite, opsEvRW, opsEvBad = 0, 1, 2, 3, 4
	opsDrainBit, opsKeep                                = 1, 0
	opsBad                                              = 255 // fd -1
)

func opsProg(b ...byte) []byte { return b }

var opsSeeds = map[string][]byte{
	// Register, make readable, serve; the draining handler empties the pipe.
	"basic-serve": opsProg(byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsDrainBit, byte(fopWrite), 0,
		byte(fopRun), 1, byte(fopWrite), 0, byte(fopRun), 0),
	// Every documented error: EBADF (-1, closed), EINVAL, ErrExists,
	// ErrNotRegistered, and the loop goes on serving.
	"errors": opsProg(byte(fopPipe), byte(fopAdd), opsBad, opsEvRead, opsKeep, byte(fopAdd), 0, opsEvBad, opsKeep,
		byte(fopUpdate), 0, opsEvRead, byte(fopRemove), 0, byte(fopAdd), 0, opsEvRead, opsKeep,
		byte(fopAdd), 0, opsEvRead, opsKeep, byte(fopUpdate), opsBad, opsEvRead, byte(fopRemove), opsBad,
		byte(fopClose), 1, byte(fopAdd), 1, opsEvWrite, opsKeep, byte(fopWrite), 0, byte(fopRun), 1,
		byte(fopRemove), 0, byte(fopRemove), 0),
	// Remove during dispatch: the first handler removes the second fd,
	// whose event is in the same batch.
	"remove-in-batch": opsProg(byte(fopPipe), byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsKeep,
		byte(fopAdd), 2, opsEvRead, opsKeep, byte(fopArm), 0, byte(fopRemove), 2,
		byte(fopArm), 2, byte(fopRemove), 0, byte(fopWrite), 0, byte(fopWrite), 1, byte(fopRun), 1),
	// Replace during dispatch: the handler of one fd removes and re-adds
	// the other, whose event is in the same batch; the new handler must
	// not get it. Then the same with UpdateHandler's re-add (dup2 first).
	"replace-in-batch": opsProg(byte(fopPipe), byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsKeep,
		byte(fopAdd), 2, opsEvRead, opsKeep, byte(fopArm), 0, byte(fopRemove), 2, byte(fopArm), 0,
		byte(fopAdd), 2, opsEvRead, opsDrainBit, byte(fopWrite), 0, byte(fopWrite), 1, byte(fopRun), 1,
		byte(fopArm), 0, byte(fopDup2), 1, 2, byte(fopArm), 0, byte(fopUpdate), 2, opsEvRW,
		byte(fopWrite), 1, byte(fopRun), 1),
	// Close without RemoveHandler, number reused by a new pipe, AddHandler
	// on it works, and the old registration never hears of the new file.
	"close-reuse": opsProg(byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsKeep, byte(fopWrite), 0,
		byte(fopClose), 0, byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsDrainBit, byte(fopWrite), 1,
		byte(fopRun), 2),
	// dup2 onto a registered number: the old file leaves it, UpdateHandler
	// re-adds the new file under a new generation.
	"dup2-onto-registered": opsProg(byte(fopPipe), byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsKeep,
		byte(fopWrite), 0, byte(fopDup2), 2, 0, byte(fopRun), 1, byte(fopUpdate), 0, opsEvRW,
		byte(fopWrite), 1, byte(fopRun), 1, byte(fopRemove), 0),
	// epoll(7) Q6: dup, then close the registered fd; the watch stays and
	// the kernel reports the file under the old number.
	"dup-close-leftover": opsProg(byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsKeep, byte(fopDup), 0,
		byte(fopClose), 0, byte(fopWrite), 0, byte(fopRun), 1, byte(fopRemove), 0, byte(fopRun), 1),
	// The leftover watch comes back under its number by dup2 after
	// RemoveHandler; AddHandler must take it over (it once said ErrExists).
	"leftover-wedge": opsProg(byte(fopPipe), byte(fopAdd), 0, opsEvRead, opsKeep, byte(fopDup), 0,
		byte(fopClose), 0, byte(fopRemove), 0, byte(fopPipe), byte(fopDup2), 2, 0,
		byte(fopAdd), 0, opsEvRead, opsDrainBit, byte(fopWrite), 0, byte(fopRun), 1),
	// Narrow during dispatch: the first write end's handler drops Write
	// from the second's interest; the second's Write event, already in
	// the batch, must be filtered out (no call at all).
	"narrow-in-batch": opsProg(byte(fopPipe), byte(fopPipe), byte(fopAdd), 1, opsEvWrite, opsKeep,
		byte(fopAdd), 3, opsEvRW, opsKeep, byte(fopArm), 1, byte(fopUpdate), 3, opsEvRead,
		byte(fopRun), 1, byte(fopArm), 1, byte(fopUpdate), 3, opsEvRW, byte(fopRun), 0),
	// Hang-ups and errors: close the write end (HUP on the read end) and
	// the read end (ERR on the write end), with None interest.
	"hup-err": opsProg(byte(fopPipe), byte(fopPipe), byte(fopAdd), 0, opsEvNone, opsKeep,
		byte(fopAdd), 3, opsEvWrite, opsKeep, byte(fopClose), 1, byte(fopClose), 1, byte(fopRun), 1,
		byte(fopWrite), 1, byte(fopRun), 0),
	// Two numbers for one file, both registered; Close(true) (odd length)
	// closes what is still its own.
	"two-numbers-close-all": opsProg(byte(fopPipe), byte(fopDup), 0, byte(fopAdd), 0, opsEvRead, opsDrainBit,
		byte(fopAdd), 2, opsEvRead, opsKeep, byte(fopWrite), 0, byte(fopRun), 1, byte(fopUpdate), 2, opsEvNone,
		byte(fopRun), 0, 0),
}

func TestLoopOpsSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoopOps")
	if *opsUpdateSeeds {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range opsSeeds {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		path := filepath.Join(dir, name)
		if *opsUpdateSeeds {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or differs from opsSeeds[%q] (err %v); run "+
				"go test -run TestLoopOpsSeedCorpus -update-loopops-seeds", path, name, err)
		}
	}
}
