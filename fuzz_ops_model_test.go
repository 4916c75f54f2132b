//go:build linux && cgo

package ioloop

// The model behind FuzzLoopOps (fuzz_ops_test.go): the process's fd table
// and the kernel's epoll interest list as far as the test's pipes go, the
// loop's handler table, and the checks each operation and each handler
// call must pass.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// opsOFD is an open file description (what dup shares): one end of a pipe.
type opsOFD struct {
	pipe  int
	write bool
	refs  int // fd numbers referring to it; at 0 the kernel drops its watches
}

type opsPipe struct {
	r, w  int // ofd indexes
	bytes int // written and not yet read
	ino   uint64
}

// opsWatch is what epoll keys a watch on: the open file and the fd number.
type opsWatch struct{ ofd, fd int }

// opsSlot is the loop's table entry for an fd number.
type opsSlot struct {
	h        *opsHandler
	reg      int // registration the loop's generation stands for; new on Add and on Update's re-add
	interest Events
}

// opsSnap is a watch as it stood when the batch's epoll_wait ran.
type opsSnap struct{ fd, reg, ofd int }

type opsModel struct {
	t       *testing.T
	l       *IOLoop
	ofds    []opsOFD
	pipes   []opsPipe
	fds     map[int]int      // open fd number -> ofd
	numbers []int            // every fd number used, in first-use order
	ep      map[opsWatch]int // the kernel's interest list: watch -> registration tag
	slots   map[int]*opsSlot // the loop's table
	nextReg int
	nextH   int

	// The batch being dispatched (between two iterations' callbacks).
	inBatch   bool
	snap      []opsSnap
	upper     map[int]Events // per ofd: what the kernel may report
	lower     map[int]Events // per ofd: what it must report (Error excluded: HUP is subtle)
	touched   map[int]bool   // fd numbers changed during the batch
	delivered map[opsSnap]bool

	trace   []string
	running bool   // inside Start
	failure string // first check that failed inside the loop
	logs    *syncBuffer
}

type opsHandler struct {
	m     *opsModel
	id    int
	drain bool
	armed []opsOp // run, in order, on the next call
}

func (h *opsHandler) HandleEvents(fd int, ev Events) { h.m.onEvent(h, fd, ev) }

// fatalf fails the execution. Inside the loop (a handler or callback,
// under a cgo callback frame) t.Fatal must not run: the failure is
// recorded, the loop stopped, and the panic unwinds to the loop's recover;
// run reports it once Start has returned.
func (m *opsModel) fatalf(format string, args ...any) {
	m.t.Helper()
	msg := fmt.Sprintf(format, args...) + "\ntrace:\n" + m.traceText()
	if m.running {
		if m.failure == "" {
			m.failure = msg
		}
		m.l.Stop()
		panic("FuzzLoopOps: model check failed")
	}
	m.t.Fatal(msg)
}

func (m *opsModel) traceText() string { return strings.Join(m.trace, "\n") }

func (m *opsModel) logf(format string, args ...any) {
	m.trace = append(m.trace, fmt.Sprintf(format, args...))
}

// pick maps a selector byte to an fd number: 255 is -1 (bad input),
// anything else one of the numbers used so far, open or closed.
func (m *opsModel) pick(sel byte) (int, bool) {
	if sel == 255 {
		return -1, true
	}
	if len(m.numbers) == 0 {
		return 0, false
	}
	return m.numbers[int(sel)%len(m.numbers)], true
}

// pickOpen maps a selector byte to one of the open fds.
func (m *opsModel) pickOpen(sel byte) (int, bool) {
	var open []int
	for _, fd := range m.numbers {
		if _, ok := m.fds[fd]; ok {
			open = append(open, fd)
		}
	}
	if len(open) == 0 {
		return 0, false
	}
	return open[int(sel)%len(open)], true
}

func opsEvents(b byte) Events {
	switch b % 5 {
	case 0:
		return None
	case 1:
		return Read
	case 2:
		return Write
	case 3:
		return Read | Write
	}
	return Read | Events(0x2000) // unknown bits: EINVAL
}

func (m *opsModel) addNumber(fd int) {
	for _, n := range m.numbers {
		if n == fd {
			return
		}
	}
	m.numbers = append(m.numbers, fd)
}

// expect checks err against the documented outcome want (nil or a
// sentinel/errno for errors.Is).
func (m *opsModel) expect(what string, err, want error) {
	m.t.Helper()
	opsCounters.errorsChecked.Add(1)
	if want == nil {
		if err != nil {
			m.fatalf("%s = %v, want nil", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		m.fatalf("%s = %v, want an error wrapping %v", what, err, want)
	}
}

// watchOf returns the watch key for fd's current file, if fd is open.
func (m *opsModel) watchOf(fd int) (opsWatch, bool) {
	o, ok := m.fds[fd]
	return opsWatch{o, fd}, ok
}

func (m *opsModel) touch(fd int) {
	if m.inBatch {
		m.touched[fd] = true
	}
}

func (m *opsModel) exec(o opsOp) {
	m.t.Helper()
	opsCounters.ops.Add(1)
	m.logf("%s", o)
	switch o.code {
	case fopPipe:
		m.newPipe()
	case fopAdd:
		m.add(o)
	case fopUpdate:
		m.update(o)
	case fopRemove:
		m.remove(o)
	case fopClose:
		if fd, ok := m.pickOpen(o.args[0]); ok {
			m.closeFD(fd)
		}
	case fopDup:
		m.dup(o)
	case fopDup2:
		m.dup2(o)
	case fopWrite:
		m.write(o)
	case fopDrain:
		m.drainOp(o)
	case fopRun:
		if !m.inBatch {
			m.run(1 + int(o.args[0])%opsMaxIters)
		}
	case fopArm:
		if fd, ok := m.pick(o.args[0]); ok && o.nested != nil {
			if s := m.slots[fd]; s != nil && len(s.h.armed) < 4 {
				s.h.armed = append(s.h.armed, *o.nested)
			}
		}
	}
}

func (m *opsModel) newPipe() {
	if len(m.pipes) >= opsMaxPipes || len(m.fds)+2 > opsMaxFDs {
		return
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		m.fatalf("pipe2: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(p[0], &st); err != nil {
		m.fatalf("fstat: %v", err)
	}
	pi := len(m.pipes)
	m.ofds = append(m.ofds, opsOFD{pipe: pi, refs: 1}, opsOFD{pipe: pi, write: true, refs: 1})
	m.pipes = append(m.pipes, opsPipe{r: len(m.ofds) - 2, w: len(m.ofds) - 1, ino: st.Ino})
	for i, fd := range p {
		if _, dup := m.fds[fd]; dup {
			m.fatalf("pipe2 returned fd %d, which the model holds open", fd)
		}
		m.fds[fd] = len(m.ofds) - 2 + i
		m.addNumber(fd)
		m.touch(fd)
	}
	m.logf("  -> pipe %d: r=%d w=%d", pi, p[0], p[1])
}

func (m *opsModel) add(o opsOp) {
	fd, ok := m.pick(o.args[0])
	if !ok {
		return
	}
	ev := opsEvents(o.args[1])
	m.nextH++
	h := &opsHandler{m: m, id: m.nextH, drain: o.args[2]&1 == 1}
	err := m.l.AddHandler(fd, h, ev)
	what := fmt.Sprintf("AddHandler(%d, #%d, %v)", fd, h.id, ev)
	m.touch(fd)
	key, open := m.watchOf(fd)
	_, watched := m.ep[key]
	s := m.slots[fd]
	switch {
	case fd < 0:
		m.expect(what, err, syscall.EBADF)
		return
	case ev&^validEvents != 0:
		m.expect(what, err, syscall.EINVAL)
		return
	case !open:
		m.expect(what, err, syscall.EBADF)
		return
	case watched && s != nil:
		m.expect(what, err, ErrExists)
		return
	case watched && s == nil:
		// The number has no handler but the kernel still watches its file
		// under a leftover tag (closed while a dup lived, then dup2'd back):
		// the core takes the watch over (TestAddHandlerTakesOverALeftoverWatch).
		m.expect(what, err, nil)
	default:
		m.expect(what, err, nil)
	}
	m.nextReg++
	m.ep[key] = m.nextReg
	m.slots[fd] = &opsSlot{h: h, reg: m.nextReg, interest: ev &^ Error}
	m.logf("  -> fd %d: handler #%d reg %d", fd, h.id, m.nextReg)
}

func (m *opsModel) update(o opsOp) {
	fd, ok := m.pick(o.args[0])
	if !ok {
		return
	}
	ev := opsEvents(o.args[1])
	err := m.l.UpdateHandler(fd, ev)
	what := fmt.Sprintf("UpdateHandler(%d, %v)", fd, ev)
	m.touch(fd)
	s := m.slots[fd]
	key, open := m.watchOf(fd)
	switch {
	case fd < 0:
		m.expect(what, err, syscall.EBADF)
	case ev&^validEvents != 0:
		m.expect(what, err, syscall.EINVAL)
	case s == nil:
		m.expect(what, err, ErrNotRegistered)
	case s.interest == ev&^Error:
		m.expect(what, err, nil) // no system call, even for a closed fd
	case !open:
		m.expect(what, err, syscall.EBADF)
	default:
		m.expect(what, err, nil)
		if _, watched := m.ep[key]; !watched {
			// EPOLL_CTL_MOD said ENOENT: the loop re-adds the file now
			// behind the number under a new generation.
			m.nextReg++
			s.reg = m.nextReg
		}
		m.ep[key] = s.reg
		s.interest = ev &^ Error
		m.logf("  -> fd %d: reg %d interest %v", fd, s.reg, s.interest)
	}
}

func (m *opsModel) remove(o opsOp) {
	fd, ok := m.pick(o.args[0])
	if !ok {
		return
	}
	err := m.l.RemoveHandler(fd)
	what := fmt.Sprintf("RemoveHandler(%d)", fd)
	m.touch(fd)
	switch {
	case fd < 0:
		m.expect(what, err, syscall.EBADF)
	case m.slots[fd] == nil:
		m.expect(what, err, ErrNotRegistered)
	default:
		m.expect(what, err, nil) // EBADF/ENOENT from DEL mean "already gone"
		delete(m.slots, fd)
		if key, open := m.watchOf(fd); open {
			delete(m.ep, key)
		}
	}
}

// release drops one reference to an ofd; the last one takes its watches
// with it, as the kernel does when the file is finally released.
func (m *opsModel) release(o int) {
	m.ofds[o].refs--
	if m.ofds[o].refs > 0 {
		return
	}
	for k := range m.ep {
		if k.ofd == o {
			delete(m.ep, k)
		}
	}
}

func (m *opsModel) closeFD(fd int) {
	if err := unix.Close(fd); err != nil {
		m.fatalf("close(%d): %v (the loop closed an fd it does not own?)", fd, err)
	}
	o := m.fds[fd]
	delete(m.fds, fd)
	m.release(o)
	m.touch(fd)
}

func (m *opsModel) dup(o opsOp) {
	fd, ok := m.pickOpen(o.args[0])
	if !ok || len(m.fds) >= opsMaxFDs {
		return
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		m.fatalf("dup(%d): %v", fd, err)
	}
	if _, held := m.fds[nfd]; held {
		m.fatalf("dup returned fd %d, which the model holds open", nfd)
	}
	m.fds[nfd] = m.fds[fd]
	m.ofds[m.fds[fd]].refs++
	m.addNumber(nfd)
	m.touch(nfd)
	m.logf("  -> %d", nfd)
}

func (m *opsModel) dup2(o opsOp) {
	src, ok1 := m.pickOpen(o.args[0])
	dst, ok2 := m.pickOpen(o.args[1])
	if !ok1 || !ok2 || src == dst {
		return
	}
	if err := unix.Dup3(src, dst, unix.O_CLOEXEC); err != nil {
		m.fatalf("dup3(%d, %d): %v", src, dst, err)
	}
	old := m.fds[dst]
	m.ofds[m.fds[src]].refs++ // the new reference first: dup2 of a file onto itself releases nothing
	m.fds[dst] = m.fds[src]
	m.release(old)
	m.touch(dst)
}

// fdFor returns an open fd referring to ofd o.
func (m *opsModel) fdFor(o int) (int, bool) {
	for _, fd := range m.numbers {
		if of, ok := m.fds[fd]; ok && of == o {
			return fd, true
		}
	}
	return 0, false
}

func (m *opsModel) write(o opsOp) {
	if len(m.pipes) == 0 {
		return
	}
	p := &m.pipes[int(o.args[0])%len(m.pipes)]
	fd, ok := m.fdFor(p.w)
	if !ok {
		return
	}
	n, err := unix.Write(fd, []byte{'x'})
	if m.ofds[p.r].refs == 0 {
		if err != unix.EPIPE {
			m.fatalf("write(%d) with no reader = %d, %v; want EPIPE", fd, n, err)
		}
		return
	}
	if n != 1 || err != nil {
		m.fatalf("write(%d) = %d, %v", fd, n, err)
	}
	p.bytes++
}

func (m *opsModel) drainOp(o opsOp) {
	if len(m.pipes) == 0 {
		return
	}
	p := &m.pipes[int(o.args[0])%len(m.pipes)]
	if fd, ok := m.fdFor(p.r); ok {
		m.drainFD(fd, p)
	}
}

// drainFD reads fd (the read end of p) empty and checks that exactly the
// bytes written come out: nothing lost, nothing invented.
func (m *opsModel) drainFD(fd int, p *opsPipe) {
	var buf [256]byte
	total := 0
	for {
		n, err := unix.Read(fd, buf[:])
		if n > 0 {
			total += n
			continue
		}
		if err == unix.EAGAIN || (n == 0 && err == nil) {
			break
		}
		m.fatalf("read(%d): %v", fd, err)
	}
	if total != p.bytes {
		m.fatalf("drained %d bytes from fd %d, model says %d were written", total, fd, p.bytes)
	}
	p.bytes = 0
}

// readiness returns what the kernel may (upper) and must (lower) report
// for ofd o now.
func (m *opsModel) readiness(o int) (upper, lower Events) {
	f := m.ofds[o]
	p := m.pipes[f.pipe]
	if f.write {
		lower = Write // we never write enough to fill a pipe
		upper = lower
		if m.ofds[p.r].refs == 0 {
			upper |= Error // EPOLLERR: no reader left
		}
		return upper, lower
	}
	if p.bytes > 0 {
		lower = Read
	}
	upper = lower
	if m.ofds[p.w].refs == 0 {
		upper |= Error // EPOLLHUP: no writer left
	}
	return upper, lower
}

// beginBatch records the interest list and readiness as epoll_wait is
// about to see them: nothing runs between the loop's last callback and
// its poll.
func (m *opsModel) beginBatch() {
	m.inBatch = true
	m.snap = m.snap[:0]
	m.upper, m.lower = map[int]Events{}, map[int]Events{}
	m.touched, m.delivered = map[int]bool{}, map[opsSnap]bool{}
	for k, reg := range m.ep {
		m.snap = append(m.snap, opsSnap{fd: k.fd, reg: reg, ofd: k.ofd})
		if _, ok := m.upper[k.ofd]; !ok {
			m.upper[k.ofd], m.lower[k.ofd] = m.readiness(k.ofd)
		}
	}
	opsCounters.iterations.Add(1)
}

// endBatch checks that no ready, wanted event of the batch was lost.
func (m *opsModel) endBatch() {
	if !m.inBatch {
		return
	}
	m.inBatch = false
	if len(m.snap) >= opsBatchCap {
		return // more watches than one wait returns: delivery spans batches
	}
	for _, e := range m.snap {
		s := m.slots[e.fd]
		if m.touched[e.fd] || s == nil || s.reg != e.reg {
			continue
		}
		if m.lower[e.ofd]&s.interest != 0 && !m.delivered[e] {
			m.fatalf("fd %d (reg %d, handler #%d) was ready for %v and wanted %v, but its handler "+
				"was not called in that iteration", e.fd, e.reg, s.h.id, m.lower[e.ofd], s.interest)
		}
	}
}

// onEvent is every handler's body: the checks listed at the top of the file.
func (m *opsModel) onEvent(h *opsHandler, fd int, ev Events) {
	if m.failure != "" {
		return
	}
	opsCounters.handlerCalls.Add(1)
	m.logf("  event fd %d %v -> handler #%d", fd, ev, h.id)
	if !m.inBatch {
		m.fatalf("handler #%d called outside a poll", h.id)
	}
	s := m.slots[fd]
	if s == nil || s.h != h {
		owner := "nobody"
		if s != nil {
			owner = fmt.Sprintf("handler #%d", s.h.id)
		}
		m.fatalf("event %v for fd %d reached handler #%d, which does not own the number (owner: %s)",
			ev, fd, h.id, owner)
	}
	if ev == None || ev&^(s.interest|Error) != 0 {
		m.fatalf("handler #%d got %v on fd %d, registered for %v", h.id, ev, fd, s.interest)
	}
	var from *opsSnap
	for i := range m.snap {
		e := &m.snap[i]
		if e.fd == fd && e.reg == s.reg && ev&^(m.upper[e.ofd]&(s.interest|Error)) == 0 {
			from = e
			break
		}
	}
	if from == nil {
		m.fatalf("handler #%d got %v on fd %d, but no watch of its registration (reg %d) could "+
			"report that when epoll_wait ran", h.id, ev, fd, s.reg)
	}
	m.delivered[*from] = true
	m.checkFD(fd)
	if cur, open := m.fds[fd]; !open || cur != from.ofd {
		// The registered file left the number (close or dup2 without
		// RemoveHandler) while another fd kept it alive: the kernel still
		// reports it under the old number, and the loop cannot know.
		opsCounters.staleFileCalls.Add(1)
	} else if h.drain && !m.ofds[cur].write {
		m.drainFD(fd, &m.pipes[m.ofds[cur].pipe])
	}
	armed := h.armed
	h.armed = nil
	for _, a := range armed {
		m.exec(a)
	}
}

// checkFD compares what fd really is with the model: the fd the handler
// is called with is an open pipe end of the inode and direction the model
// expects, or closed.
func (m *opsModel) checkFD(fd int) {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	o, open := m.fds[fd]
	if !open {
		if err != unix.EBADF {
			m.fatalf("fd %d should be closed, fstat = %v", fd, err)
		}
		return
	}
	if err != nil {
		m.fatalf("fstat(%d): %v", fd, err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		m.fatalf("F_GETFL(%d): %v", fd, err)
	}
	p := m.pipes[m.ofds[o].pipe]
	if st.Ino != p.ino || (fl&unix.O_ACCMODE == unix.O_WRONLY) != m.ofds[o].write {
		m.fatalf("fd %d is inode %d flags %#x, model says pipe %d (inode %d) write=%v",
			fd, st.Ino, fl, m.ofds[o].pipe, p.ino, m.ofds[o].write)
	}
}

// run runs n real loop iterations: a callback that re-queues itself keeps
// the poll timeout at 0, marks the batch boundaries, and stops the loop.
func (m *opsModel) run(n int) {
	left := n
	var step func()
	step = func() {
		if m.failure != "" {
			return
		}
		m.endBatch()
		if left == 0 {
			m.l.Stop()
			return
		}
		left--
		m.beginBatch()
		if err := m.l.AddCallback(step); err != nil {
			m.fatalf("AddCallback: %v", err)
		}
	}
	if err := m.l.AddCallback(step); err != nil {
		m.fatalf("AddCallback: %v", err)
	}
	m.running = true
	err := m.l.Start()
	m.running = false
	m.inBatch = false
	if m.failure != "" {
		m.t.Fatal(m.failure)
	}
	if err != nil {
		m.fatalf("Start: %v", err)
	}
	if n := m.l.Stats().Panics; n != 0 {
		m.fatalf("%d panics recovered by the loop:\n%s", n, m.logs)
	}
	if left != 0 {
		m.fatalf("the loop stopped with %d of %d iterations left", left, n)
	}
}

// teardown closes the loop (Close(true) closes each registered fd whose
// watch is still its own) and then every fd the model still holds.
func (m *opsModel) teardown(closeAll bool) {
	var loopCloses []int
	if closeAll {
		for fd := range m.slots {
			if key, open := m.watchOf(fd); open {
				if _, watched := m.ep[key]; watched {
					loopCloses = append(loopCloses, fd)
				}
			}
		}
	}
	m.logf("Close(%v): loop closes %v", closeAll, loopCloses)
	if err := m.l.Close(closeAll); err != nil {
		m.fatalf("Close(%v) = %v", closeAll, err)
	}
	for _, fd := range loopCloses {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			m.fatalf("Close(true) left registered fd %d open (F_GETFD: %v)", fd, err)
		}
		o := m.fds[fd]
		delete(m.fds, fd)
		m.release(o)
	}
	m.closeAllFDs()
}

func (m *opsModel) closeAllFDs() {
	for _, fd := range m.numbers {
		if _, open := m.fds[fd]; open {
			m.closeFD(fd)
		}
	}
}

// opsBatchCap is the C core's first event-buffer size
// (IOLOOP_INITIAL_EVENTS), less one slot for the waker: up to this many
// ready watches come back from one epoll_wait.
const opsBatchCap = 64 - 1

func opsOpenFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) - 1 // ReadDir's own fd
}
