//go:build linux

package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

// FuzzStreamFraming feeds arbitrary bytes, cut into arbitrary chunks,
// through a real pipe or socketpair into a Stream, runs an arbitrary
// sequence of ReadUntil / ReadBytes / ReadSome / ReadUntilClose on it, and
// compares every result with a model that reads the same bytes from a
// slice. The model knows the documented limits: ErrBufferFull at once for
// a request over the read buffer cap, ErrDelimiterNotFound when the
// delimiter does not end within max bytes, io.EOF for a read the rest of
// the input cannot satisfy, and that bytes buffered before EOF can still be
// read. Whatever happens, the bytes delivered must be the input, in order,
// with nothing skipped, and every callback must run exactly once, never
// inside the call that requested it.
//
// Each execution builds its own loop and fds, runs under RunSync with a
// deadline and checks that no fd is left open. Seeds live in
// testdata/fuzz/FuzzStreamFraming; run longer with
//
//	go test -run '^$' -fuzz '^FuzzStreamFraming$' -fuzztime 5m ./tests/
//
// Inputs: cfg picks the fd kind, the writer's pacing and the buffer
// sizes (see decodeFraming); data is the stream's content; chunks the
// sizes of the writes; ops two bytes per read request.
func FuzzStreamFraming(f *testing.F) {
	f.Add(uint16(0), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), []byte{3, 0, 7}, []byte{0x40, 0, 2, 3, 4, 0})
	f.Fuzz(func(t *testing.T, cfg uint16, data, chunks, ops []byte) {
		runFraming(t, decodeFraming(cfg, data, chunks, ops))
	})
}

// framingCase is one decoded fuzz input.
type framingCase struct {
	pipe      bool // a pipe (plain write/read) rather than an AF_UNIX socketpair
	pacing    int  // 0: one chunk per loop iteration; 1: all at once; 2: a chunk only while a read is pending
	halfClose bool // socketpair: end with shutdown(SHUT_WR) instead of close
	maxRead   int  // WithMaxReadBuffer
	initRead  int  // WithReadBufferSize (the stream caps it at maxRead)
	data      []byte
	chunks    []int
	ops       []framingOp
}

type opKind uint8

const (
	opUntil opKind = iota
	opBytes
	opSome
	opUntilClose
)

type framingOp struct {
	kind     opKind
	delim    []byte // opUntil
	n        int    // opUntil: max (0: the cap); opBytes: count
	deferred bool   // issue it from a fresh loop callback, not inside the previous read callback
	twice    bool   // then request a second read at once: must be ErrReadPending
}

func (op framingOp) String() string {
	s := ""
	switch op.kind {
	case opUntil:
		s = fmt.Sprintf("ReadUntil(%q, %d)", op.delim, op.n)
	case opBytes:
		s = fmt.Sprintf("ReadBytes(%d)", op.n)
	case opSome:
		s = "ReadSome"
	case opUntilClose:
		s = "ReadUntilClose"
	}
	if op.deferred {
		s += "[deferred]"
	}
	return s
}

var framingDelims = [][]byte{
	[]byte("\n"), []byte("\r\n"), []byte("\r\n\r\n"), []byte("a"),
	[]byte("ab"), []byte("aa"), []byte("aba"), []byte("\x00\xff"),
}

const (
	maxFramingData = 4096 // far below a pipe's 64 KiB: the writer never blocks for long
	maxFramingOps  = 64
)

// decodeFraming maps fuzz bytes to a case. cfg bits: 0 pipe, 1-2 pacing,
// 3 half-close, 4-9 maxRead-1 (1..64, so limits are hit often), 10 a
// 4 KiB cap instead, 11-13 log2 of the initial buffer (1..128). Each op
// is two bytes (k, p): k&7 is the kind (0-1 until, 2-3 bytes, 4-5 some, 6
// until close, 7 over the cap), k&8 deferred, k&16 twice, k>>5 the
// delimiter; p the max or count.
func decodeFraming(cfg uint16, data, chunks, ops []byte) framingCase {
	c := framingCase{
		pipe:      cfg&1 != 0,
		pacing:    int(cfg>>1&3) % 3,
		halfClose: cfg&8 != 0,
		maxRead:   1 + int(cfg>>4&63),
		initRead:  1 << (cfg >> 11 & 7),
	}
	if cfg&(1<<10) != 0 {
		c.maxRead = 4096
	}
	if len(data) > maxFramingData {
		data = data[:maxFramingData]
	}
	c.data = data
	for _, b := range chunks {
		c.chunks = append(c.chunks, 1+int(b))
	}
	for i := 0; i+1 < len(ops) && len(c.ops) < maxFramingOps; i += 2 {
		k, p := ops[i], int(ops[i+1])
		op := framingOp{deferred: k&8 != 0, twice: k&16 != 0}
		switch k & 7 {
		case 0, 1:
			op.kind, op.delim = opUntil, framingDelims[k>>5]
			if p != 0 {
				op.n = 1 + p%c.maxRead
			}
		case 2, 3:
			op.kind, op.n = opBytes, 1+p%c.maxRead
		case 4, 5:
			op.kind = opSome
		case 6:
			op.kind = opUntilClose
		case 7: // over the cap: must fail at once with ErrBufferFull
			if k>>5&1 != 0 {
				op.kind, op.n = opBytes, c.maxRead+1+p
			} else {
				op.kind, op.delim, op.n = opUntil, framingDelims[0], c.maxRead+1+p
			}
		}
		c.ops = append(c.ops, op)
	}
	return c
}

func (c framingCase) String() string {
	ops := make([]string, len(c.ops))
	for i, op := range c.ops {
		ops[i] = op.String()
	}
	return fmt.Sprintf("pipe=%v pacing=%d halfClose=%v maxRead=%d initRead=%d data=%d bytes chunks=%v ops=[%s]",
		c.pipe, c.pacing, c.halfClose, c.maxRead, c.initRead, len(c.data), c.chunks, strings.Join(ops, " "))
}

// framingModel is the reference reader: the input as a slice and a
// position in it.
type framingModel struct {
	data    []byte
	pos     int
	maxRead int
	// strict until a read fails on a limit: from then on the stream is
	// closing and may discard what it buffered (a lingering close), so a
	// read may fail at any point, but what it delivers must still be the
	// next bytes of the input.
	strict bool
}

// readResult is what a read request produced: an error from the call
// itself (sync), or the callback's arguments.
type readResult struct {
	p    []byte
	err  error
	sync bool
}

func (r readResult) String() string {
	how := "callback"
	if r.sync {
		how = "returned"
	}
	return fmt.Sprintf("%s %q, %v", how, clip(r.p), r.err)
}

func clip(p []byte) []byte {
	if len(p) > 40 {
		return p[:40]
	}
	return p
}

func isEOFClose(r readResult) bool {
	return len(r.p) == 0 && errors.Is(r.err, ioloop.ErrStreamClosed) && errors.Is(r.err, io.EOF)
}

// check compares one result with the model and advances it.
func (m *framingModel) check(op framingOp, r readResult) error {
	rem := m.data[m.pos:]
	bad := func(want string) error {
		return fmt.Errorf("%v at offset %d (%d bytes left, next %q): %v; want %s", op, m.pos, len(rem), clip(rem), r, want)
	}
	if op.n > m.maxRead {
		if !r.sync || !errors.Is(r.err, ioloop.ErrBufferFull) {
			return bad("ErrBufferFull at once")
		}
		return nil
	}
	if !bytes.HasPrefix(rem, r.p) {
		return bad("the next bytes of the input")
	}
	if !m.strict {
		if r.err != nil && !errors.Is(r.err, ioloop.ErrStreamClosed) {
			return bad("an ErrStreamClosed")
		}
		if r.err == nil && !shapeOK(op, r.p, m.maxRead) {
			return bad("a result of the requested shape")
		}
		m.pos += len(r.p)
		return nil
	}
	var ok bool
	var want string
	switch op.kind {
	case opSome:
		if len(rem) == 0 {
			ok, want = isEOFClose(r), "io.EOF"
		} else {
			ok, want = !r.sync && r.err == nil && len(r.p) >= 1 && len(r.p) <= m.maxRead, "1 to maxRead bytes"
		}
	case opBytes:
		if len(rem) >= op.n {
			ok, want = !r.sync && r.err == nil && len(r.p) == op.n, fmt.Sprintf("%d bytes", op.n)
		} else {
			ok, want = isEOFClose(r), "io.EOF"
		}
	case opUntil:
		max := op.n
		if max == 0 {
			max = m.maxRead
		}
		i := bytes.Index(rem, op.delim)
		switch {
		case i >= 0 && i+len(op.delim) <= max:
			ok, want = !r.sync && r.err == nil && len(r.p) == i+len(op.delim), fmt.Sprintf("%q", rem[:i+len(op.delim)])
		case len(rem) >= max:
			ok, want = !r.sync && len(r.p) == 0 && errors.Is(r.err, ioloop.ErrStreamClosed) &&
				errors.Is(r.err, ioloop.ErrDelimiterNotFound), "ErrDelimiterNotFound"
			m.strict = !ok
		default:
			ok, want = isEOFClose(r), "io.EOF"
		}
	case opUntilClose:
		okAll := !r.sync && r.err == nil && len(r.p) == len(rem)
		okFull := !r.sync && len(r.p) == 0 && errors.Is(r.err, ioloop.ErrStreamClosed) && errors.Is(r.err, ioloop.ErrBufferFull)
		switch {
		case len(rem) < m.maxRead:
			ok, want = okAll, "the rest of the input"
		case len(rem) > m.maxRead:
			ok, want = okFull, "ErrBufferFull"
		default: // exactly the cap: depends on whether EOF was read before the buffer filled
			ok, want = okAll || okFull, "the rest of the input or ErrBufferFull"
		}
		if okFull {
			m.strict = false
		}
	}
	if !ok {
		return bad(want)
	}
	m.pos += len(r.p)
	return nil
}

// shapeOK checks a successful result against what op asked for.
func shapeOK(op framingOp, p []byte, maxRead int) bool {
	switch op.kind {
	case opSome:
		return len(p) >= 1 && len(p) <= maxRead
	case opBytes:
		return len(p) == op.n
	case opUntil:
		max := op.n
		if max == 0 {
			max = maxRead
		}
		return len(p) <= max && bytes.HasSuffix(p, op.delim) && bytes.Index(p, op.delim) == len(p)-len(op.delim)
	}
	return true
}

// framingDriver runs one case on the loop goroutine: a writer feeding the
// chunks and a reader issuing the ops, then draining to the end.
type framingDriver struct {
	c    framingCase
	l    *ioloop.IOLoop
	s    *ioloop.Stream
	m    framingModel
	wfd  int // the writing end; -1 once closed
	done func(error)

	woff, wchunk int
	writeFn      func()
	wdone        bool // the writer closed (or shut down) its end
	next         int  // the next op
	rdone        bool // the final drain ended
	inCall       bool // a read request is on the stack
	finished     bool
	err          error
}

func (d *framingDriver) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.finish()
}

func (d *framingDriver) finish() {
	if d.finished {
		return
	}
	d.finished = true
	d.s.Close()
	if d.wfd >= 0 {
		_ = unix.Close(d.wfd)
		d.wfd = -1
	}
	d.done(d.err)
}

func (d *framingDriver) start(done func(error)) {
	d.done = done
	d.writeFn = d.writeStep
	d.writeStep()
	d.issueNext()
}

// writeStep writes the next chunk (all of them with pacing 1) and comes
// back on the next loop iteration.
func (d *framingDriver) writeStep() {
	if d.wdone || d.finished {
		return
	}
	for d.woff < len(d.c.data) {
		if d.c.pacing == 2 && !d.rdone && !d.s.Reading() {
			break
		}
		n := len(d.c.data) - d.woff
		if len(d.c.chunks) > 0 {
			n = min(n, d.c.chunks[d.wchunk%len(d.c.chunks)])
		}
		k, err := unix.Write(d.wfd, d.c.data[d.woff:d.woff+n])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			// Only a stream that gave up on a limit may stop reading.
			if d.m.strict {
				d.fail(fmt.Errorf("writer: %v at offset %d, but the stream had no reason to close", err, d.woff))
				return
			}
			d.closeWriter()
			return
		}
		d.woff += k
		if k == n {
			d.wchunk++
		}
		if d.c.pacing != 1 {
			break
		}
	}
	if d.woff == len(d.c.data) {
		d.closeWriter()
		return
	}
	if err := d.l.AddCallback(d.writeFn); err != nil {
		d.fail(err)
	}
}

func (d *framingDriver) closeWriter() {
	d.wdone = true
	if d.c.halfClose && !d.c.pipe {
		if err := unix.Shutdown(d.wfd, unix.SHUT_WR); err != nil && d.m.strict {
			d.fail(fmt.Errorf("shutdown: %v", err))
			return
		}
	} else {
		_ = unix.Close(d.wfd)
		d.wfd = -1
	}
	if d.rdone {
		d.finish()
	}
}

func (d *framingDriver) issueNext() {
	if d.finished {
		return
	}
	if d.next == len(d.c.ops) {
		d.drain()
		return
	}
	op := d.c.ops[d.next]
	d.next++
	if op.deferred {
		if err := d.l.AddCallback(func() { d.issue(op) }); err != nil {
			d.fail(err)
		}
		return
	}
	d.issue(op)
}

func (d *framingDriver) issue(op framingOp) {
	if d.finished {
		return
	}
	called := false
	cb := func(p []byte, err error) {
		if d.finished {
			return
		}
		switch {
		case d.inCall:
			d.fail(fmt.Errorf("%v: callback ran inside the call that requested it", op))
			return
		case called:
			d.fail(fmt.Errorf("%v: callback ran twice", op))
			return
		}
		called = true
		if e := d.m.check(op, readResult{p: p, err: err}); e != nil {
			d.fail(e)
			return
		}
		d.issueNext()
	}
	d.inCall = true
	var err error
	switch op.kind {
	case opUntil:
		err = d.s.ReadUntil(op.delim, op.n, cb)
	case opBytes:
		err = d.s.ReadBytes(op.n, cb)
	case opSome:
		err = d.s.ReadSome(cb)
	case opUntilClose:
		err = d.s.ReadUntilClose(cb)
	}
	d.inCall = false
	if d.finished {
		return
	}
	if err != nil {
		if e := d.m.check(op, readResult{err: err, sync: true}); e != nil {
			d.fail(e)
			return
		}
		d.issueNext()
		return
	}
	if op.twice {
		if err := d.s.ReadSome(func([]byte, error) { d.fail(fmt.Errorf("%v: a rejected second read ran", op)) }); !errors.Is(err, ioloop.ErrReadPending) {
			d.fail(fmt.Errorf("%v: second read while one is pending returned %v; want ErrReadPending", op, err))
		}
	}
}

// drain reads with ReadSome until the stream ends: in strict mode the rest
// of the input then io.EOF; after a limit failure a prefix of it then any
// close.
func (d *framingDriver) drain() {
	err := d.s.ReadSome(func(p []byte, err error) {
		if d.finished {
			return
		}
		if !bytes.HasPrefix(d.m.data[d.m.pos:], p) {
			d.fail(fmt.Errorf("drain at offset %d: got %q; want the next bytes %q", d.m.pos, clip(p), clip(d.m.data[d.m.pos:])))
			return
		}
		d.m.pos += len(p)
		if err != nil {
			d.endDrain(err)
			return
		}
		if len(p) == 0 {
			d.fail(fmt.Errorf("drain: ReadSome delivered nothing and no error"))
			return
		}
		d.drain()
	})
	if err != nil {
		d.endDrain(err)
	}
}

func (d *framingDriver) endDrain(err error) {
	switch {
	case !errors.Is(err, ioloop.ErrStreamClosed):
		d.fail(fmt.Errorf("drain ended with %v; want an ErrStreamClosed", err))
		return
	case d.m.strict && !errors.Is(err, io.EOF):
		d.fail(fmt.Errorf("drain ended with %v; want io.EOF", err))
		return
	case d.m.strict && d.m.pos != len(d.m.data):
		d.fail(fmt.Errorf("drain ended at offset %d of %d: input lost", d.m.pos, len(d.m.data)))
		return
	}
	d.rdone = true
	if d.wdone {
		d.finish()
	} else if d.c.pacing == 2 {
		_ = d.l.AddCallback(d.writeFn) // nobody reads any more: let the writer finish
	}
}

// runFraming runs one case on a fresh loop and fds.
func runFraming(t *testing.T, c framingCase) {
	base := countFDs(t)
	logs := &logBuffer{}
	l, err := ioloop.New(ioloop.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	var fds [2]int
	if c.pipe {
		err = unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC)
	} else {
		var p [2]int
		p, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		fds = p
	}
	if err != nil {
		_ = l.Close(false)
		t.Fatal(err)
	}
	s, err := ioloop.NewStream(l, fds[0], ioloop.WithMaxReadBuffer(c.maxRead), ioloop.WithReadBufferSize(c.initRead))
	if err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		_ = l.Close(false)
		t.Fatal(err)
	}
	d := &framingDriver{c: c, l: l, s: s, wfd: fds[1], m: framingModel{data: c.data, maxRead: c.maxRead, strict: true}}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	err = l.RunSync(ctx, d.start)
	cancel()
	// The loop has stopped: nothing runs concurrently with this cleanup.
	s.Close()
	if d.wfd >= 0 {
		_ = unix.Close(d.wfd)
	}
	_ = l.Close(false)
	if err != nil {
		t.Fatalf("%v\ncase: %v\nwriter at %d/%d (done %v), op %d/%d, model at %d (strict %v)",
			err, c, d.woff, len(c.data), d.wdone, d.next, len(c.ops), d.m.pos, d.m.strict)
	}
	if out := logs.String(); out != "" {
		t.Fatalf("the loop logged (a callback panicked?):\n%s\ncase: %v", out, c)
	}
	if n := countFDs(t); n != base {
		t.Fatalf("%d fds open after the case, %d before\ncase: %v", n, base, c)
	}
}

// countFDs counts this process's open descriptors (testing.TB-friendly
// twin of openFDs).
func countFDs(tb testing.TB) int {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(entries) - 1
}
