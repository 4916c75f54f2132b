package ioloop

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Events is a set of I/O conditions. The values are exactly the epoll
// bits, as in Tornado, so they can be passed to and from C unchanged.
type Events uint32

const (
	// None asks for no events; Error conditions are still reported.
	None Events = 0
	// Read is EPOLLIN: data can be read, a connection can be accepted, or
	// the peer closed its side (a read then returns 0).
	Read Events = 0x1
	// Write is EPOLLOUT: a write will not block.
	Write Events = 0x4
	// Error is EPOLLERR|EPOLLHUP. The kernel reports these whether or not
	// they were asked for, so every handler must be ready to receive them.
	Error Events = 0x8 | 0x10

	validEvents = Read | Write | Error
)

// String returns the set as "Read|Write|Error", "None", or with any bits
// outside the known ones in hex ("Read|0x2000").
func (e Events) String() string {
	if e == None {
		return "None"
	}
	var parts []string
	if e&Read != 0 {
		parts = append(parts, "Read")
	}
	if e&Write != 0 {
		parts = append(parts, "Write")
	}
	switch e & Error {
	case Error:
		parts = append(parts, "Error")
	case 0x8:
		parts = append(parts, "Error(ERR)")
	case 0x10:
		parts = append(parts, "Error(HUP)")
	}
	if rest := e &^ validEvents; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	return strings.Join(parts, "|")
}

// Handler receives the I/O events of one file descriptor. HandleEvents
// runs on the loop goroutine, one call at a time, and gets only the events
// it registered for that are ready, plus any Error conditions.
type Handler interface {
	HandleEvents(fd int, events Events)
}

// HandlerFunc adapts an ordinary function to Handler, like http.HandlerFunc.
type HandlerFunc func(fd int, events Events)

// HandleEvents calls f(fd, events).
func (f HandlerFunc) HandleEvents(fd int, events Events) { f(fd, events) }

// event is one ready event as the C core hands it over. Its layout must
// match ioloop_event in csrc/ioloop.h (loop_cgo.go checks this at compile
// time).
type event struct {
	fd     int32
	gen    uint32
	events uint32
}

// checkRegistration validates AddHandler/UpdateHandler arguments before any
// syscall, so bad input never reaches the kernel.
func checkRegistration(op string, fd int, events Events) error {
	if fd < 0 {
		return fmt.Errorf("ioloop: %s: negative fd %d: %w", op, fd, syscall.EBADF)
	}
	if events&^validEvents != 0 {
		return fmt.Errorf("ioloop: %s(fd %d): unknown event bits %#x (want Read, Write, Error): %w",
			op, fd, uint32(events&^validEvents), syscall.EINVAL)
	}
	return nil
}

// dispatchBatch runs the handlers of one epoll_wait batch. It is called
// once per batch, from the C core through the exported trampoline in
// loop_cgo.go (or directly by a test poller).
//
// Each event is checked against its slot just before the handler runs: the
// generation in the event must be the slot's, and the registration live,
// so a handler removed or replaced by an earlier handler of the same batch
// never sees it, nor does a later owner of a reused fd number
// (golang/go#59545 is the runtime's version of this bug). The check takes
// no lock. Registrations changed from other goroutines are ordered with it
// by l.dispatching, a Dekker-style handshake: the loop publishes the
// registration it is about to serve and then reads the slot; a writer on
// another goroutine changes the slot and then waits while the loop still
// serves the registration it changed (see waitDispatchPast). One of the
// two always sees the other, so once RemoveHandler returns on any
// goroutine, its handler is neither running nor about to run.
func (l *IOLoop) dispatchBatch(evs []event) {
	// The batch runs inside Poll, but the loop is awake now: producers need
	// not write the eventfd, since the loop looks at its queues before it
	// sleeps again.
	if l.sleeping.Load() {
		l.sleeping.Store(false)
	}
	l.batchTimed = false
	dispatched, stale := 0, 0
	for i := range evs {
		ev := &evs[i]
		fd := int(ev.fd)
		l.dispatching.Store(eventTag(fd, ev.gen)) // before the slot is read
		s := l.table.lookup(fd)
		if s == nil {
			stale++
			continue
		}
		st := s.state.Load()
		if !slotIsLive(st) || slotGen(st) != ev.gen {
			stale++
			continue
		}
		ready := Events(ev.events) & (slotEvents(st) | Error)
		if ready == None {
			continue
		}
		dispatched++
		l.runHandler(s.handler, fd, ready)
	}
	l.dispatching.Store(0)
	bump(&l.stats.events, uint64(dispatched))
	if stale > 0 {
		bump(&l.stats.stale, uint64(stale))
	}
}

// waitDispatchPast returns once the loop no longer serves the registration
// tag, after the caller changed that registration's slot: from then on,
// every dispatch reads the new slot. On the loop goroutine it returns at
// once: the loop serves nothing concurrently with its own handlers, so a
// handler can remove any registration, including its own, without
// deadlock. Elsewhere it waits for the handler now running for tag, if
// any, to return; handlers are short by contract, so it yields first and
// sleeps only after that.
func (l *IOLoop) waitDispatchPast(tag uint64) {
	if l.dispatching.Load() != tag || l.InLoop() {
		return
	}
	for i := 0; l.dispatching.Load() == tag; i++ {
		backoff(i)
	}
}

// backoff waits a little, longer as attempt grows: yield first, then sleep
// up to a millisecond.
func backoff(attempt int) {
	if attempt < 64 {
		runtime.Gosched()
		return
	}
	time.Sleep(min(time.Duration(attempt-63)*10*time.Microsecond, time.Millisecond))
}

// lockSlot takes regMu and returns fd's slot (created when grow is set;
// nil if absent otherwise) and its state. Off the loop it first waits for
// another writer that is retiring the slot's registration (slotBusy) to
// finish; on the loop it cannot wait (that writer waits for the loop), and
// the busy slot counts as free: its registration has already ended.
func (l *IOLoop) lockSlot(fd int, grow bool) (*handlerSlot, uint64) {
	for i := 0; ; i++ {
		l.regMu.Lock()
		if l.regClosed {
			return nil, 0
		}
		var s *handlerSlot
		if grow {
			s = l.table.slotFor(fd)
		} else if s = l.table.lookup(fd); s == nil {
			return nil, 0
		}
		st := s.state.Load()
		if st&slotBusy == 0 || l.InLoop() {
			return s, st
		}
		l.regMu.Unlock()
		backoff(i)
	}
}

// AddHandler registers h for events on fd. events is a combination of Read
// and Write (Error is always reported and may be included or not). It is
// safe from any goroutine; the handler may be called as soon as it
// returns, on the loop goroutine.
//
// Errors: ErrExists if fd already has a handler, or C code on this loop
// watches it through the C API (then the error wraps EBUSY too; see
// CAPI); an error wrapping EBADF for a negative or closed fd, EINVAL for
// a nil handler or unknown event bits, EPERM for an fd epoll cannot watch
// (a regular file or directory); ErrClosed after Close. The loop is
// unaffected by any of these.
//
// An fd that was closed without RemoveHandler does not wedge its number:
// when the number is reused, AddHandler for the new file succeeds, and
// events still queued for the old file are dropped. The old registration
// ends then, as if removed (see RemoveHandler for what that guarantees).
//
// Call RemoveHandler before closing an fd. epoll watches a file, not a
// number: if a dup keeps the file open after its registered number is
// closed, the kernel keeps reporting it under the old number, to the
// handler while it is registered and, after RemoveHandler, as stale events
// that the loop drops but cannot silence (Stats.StaleEvents grows, and a
// readable file keeps the loop awake) until the file is closed. No
// level-triggered loop (Tornado, libevent, libuv) can do better.
func (l *IOLoop) AddHandler(fd int, h Handler, events Events) error {
	if err := checkRegistration("AddHandler", fd, events); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("ioloop: AddHandler(fd %d): nil handler: %w", fd, syscall.EINVAL)
	}
	interest := events &^ Error
	s, old := l.lockSlot(fd, true)
	defer l.regMu.Unlock()
	if s == nil {
		return fmt.Errorf("ioloop: AddHandler(fd %d): %w", fd, l.errClosed())
	}
	gen := nextGen(slotGen(old))
	// The kernel, not the table, decides whether fd is already watched: a
	// slot can be stale when its fd was closed without RemoveHandler, and
	// then EPOLL_CTL_ADD for the file now behind that number succeeds.
	if err := l.poller.Control(ctlAdd, fd, interest, gen); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("ioloop: AddHandler(fd %d): C code on this loop watches the fd (see CAPI): %w: %w",
				fd, ErrExists, os.NewSyscallError("epoll_ctl", err))
		}
		if !errors.Is(err, syscall.EEXIST) {
			return ctlError("AddHandler", fd, err)
		}
		if slotIsLive(old) {
			return fmt.Errorf("ioloop: AddHandler(fd %d): %w", fd, ErrExists)
		}
		// The kernel still watches this file under this number, but no
		// handler owns the watch: the number was closed while a dup kept
		// the file open (so RemoveHandler could not reach the watch), and
		// the file came back to the number (dup2). Take the watch over
		// under the new generation (libevent's ADD-to-MOD fallback).
		if err := l.poller.Control(ctlMod, fd, interest, gen); err != nil {
			return ctlError("AddHandler", fd, err)
		}
	}
	if slotIsLive(old) {
		// The kernel had forgotten the registered file (closed without
		// RemoveHandler, its number reused): that registration ends here,
		// and its handler may be serving a last event on the loop now.
		if !l.retireLocked(s, fd, old, gen) {
			// While this call waited, a handler on the loop registered
			// the fd itself, taking over the watch added above.
			return fmt.Errorf("ioloop: AddHandler(fd %d): %w", fd, ErrExists)
		}
		if l.regClosed {
			return fmt.Errorf("ioloop: AddHandler(fd %d): %w", fd, l.errClosed())
		}
	}
	// No dispatch reads s.handler now (the slot is not live), and the
	// store below publishes it with the new state.
	s.handler = h
	s.state.Store(packSlot(gen, true, interest))
	l.table.count++
	return nil
}

// UpdateHandler changes the events fd's handler receives. Asking for the
// events it already has costs no system call. Safe from any goroutine:
// once it returns, the handler no longer gets an event it stopped asking
// for, even one already in the batch being dispatched. Errors:
// ErrNotRegistered for an unknown fd, and those of AddHandler.
func (l *IOLoop) UpdateHandler(fd int, events Events) error {
	if err := checkRegistration("UpdateHandler", fd, events); err != nil {
		return err
	}
	interest := events &^ Error
	s, st := l.lockSlot(fd, false)
	switch {
	case s == nil && l.regClosed:
		l.regMu.Unlock()
		return fmt.Errorf("ioloop: UpdateHandler(fd %d): %w", fd, l.errClosed())
	case !slotIsLive(st):
		l.regMu.Unlock()
		return fmt.Errorf("ioloop: UpdateHandler(fd %d): %w", fd, ErrNotRegistered)
	case slotEvents(st) == interest:
		l.regMu.Unlock()
		return nil
	}
	gen := slotGen(st)
	err := l.poller.Control(ctlMod, fd, interest, gen)
	if errors.Is(err, syscall.ENOENT) {
		// The registered file is gone (closed, or replaced by dup2) and
		// another one holds the number: watch that one, under a new
		// generation so nothing queued for the old file leaks through
		// (libevent's MOD-to-ADD fallback).
		gen = nextGen(gen)
		err = l.poller.Control(ctlAdd, fd, interest, gen)
	}
	if err != nil {
		l.regMu.Unlock()
		return ctlError("UpdateHandler", fd, err)
	}
	s.state.Store(packSlot(gen, true, interest))
	l.regMu.Unlock()
	if gen != slotGen(st) || slotEvents(st)&^interest != 0 {
		// Narrowed, or moved to another file: a dispatch that read the
		// old state may be about to deliver what no longer applies.
		l.waitDispatchPast(eventTag(fd, slotGen(st)))
	}
	return nil
}

// RemoveHandler stops watching fd. It does not close fd. Once it returns,
// on whatever goroutine, the handler is not running for fd and is never
// called for it again, even for an event of the batch being dispatched:
// called from another goroutine while the handler runs, RemoveHandler
// waits for it to return. From inside any handler, callback or timer of
// the same loop, including fd's own handler, it never waits. (So a
// handler must not itself wait for a goroutine that is removing it.)
//
// An fd that was closed before being removed is removed without error
// (the kernel forgot it already). ErrNotRegistered for an fd without
// handler, ErrClosed after Close.
func (l *IOLoop) RemoveHandler(fd int) error {
	if fd < 0 {
		return fmt.Errorf("ioloop: RemoveHandler: negative fd %d: %w", fd, syscall.EBADF)
	}
	s, st := l.lockSlot(fd, false)
	defer l.regMu.Unlock()
	switch {
	case s == nil && l.regClosed:
		return fmt.Errorf("ioloop: RemoveHandler(fd %d): %w", fd, l.errClosed())
	case !slotIsLive(st):
		return fmt.Errorf("ioloop: RemoveHandler(fd %d): %w", fd, ErrNotRegistered)
	}
	err := l.poller.Control(ctlDel, fd, 0, 0)
	l.retireLocked(s, fd, st, slotGen(st))
	switch {
	case err == nil,
		// Already gone: fd was closed (EBADF), or its number now belongs to
		// a file we never registered (ENOENT); EPERM cannot have been
		// registered at all. libevent treats these the same way.
		errors.Is(err, syscall.EBADF), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.EPERM):
		return nil
	}
	return ctlError("RemoveHandler", fd, err)
}

// retireLocked ends the live registration st of slot s: from now on no
// dispatch starts serving it, and by the time retireLocked returns none
// still does, so the handler can be dropped. keepGen is the generation the
// slot keeps (the next registration gets a higher one).
//
// Called with regMu held. If the loop is serving the registration right
// now (on another goroutine than the caller's), it marks the slot busy,
// releases regMu while it waits (the running handler may need regMu to
// add or remove fds), and takes it again. It reports false when a writer
// on the loop took the slot over meanwhile; the slot is theirs then.
func (l *IOLoop) retireLocked(s *handlerSlot, fd int, st uint64, keepGen uint32) bool {
	l.table.count--
	dead := packSlot(keepGen, false, None)
	s.state.Store(dead) // before reading dispatching: see dispatchBatch
	if tag := eventTag(fd, slotGen(st)); l.dispatching.Load() == tag && !l.InLoop() {
		s.state.Store(dead | slotBusy)
		l.regMu.Unlock()
		l.waitDispatchPast(tag)
		l.regMu.Lock()
		if s.state.Load() != dead|slotBusy {
			return false
		}
		s.state.Store(dead)
	}
	s.handler = nil // let the handler be collected
	return true
}

// ctlError wraps an epoll_ctl failure with the operation and the fd.
func ctlError(op string, fd int, err error) error {
	sysErr := os.NewSyscallError("epoll_ctl", err)
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("ioloop: %s(fd %d): fd cannot be polled (epoll does not watch regular files "+
			"or directories, which are always ready: read them directly): %w", op, fd, sysErr)
	}
	return fmt.Errorf("ioloop: %s(fd %d): %w", op, fd, sysErr)
}
