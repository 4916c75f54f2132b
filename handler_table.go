package ioloop

import "sync/atomic"

// handlerSlot is one entry of the fd-indexed table (libuv's watchers[fd]).
//
// state is what the loop reads, without a lock, for every event: the
// registration's generation, whether it is live, and the events its
// handler asked for. handler is a plain field: it is written only while no
// dispatch can be about to read it (see handlerTable), and read only after
// a load of state that shows the registration live, which orders the read
// after the write.
type handlerSlot struct {
	state   atomic.Uint64
	handler Handler
}

// Layout of handlerSlot.state: generation in the high 32 bits, a live bit,
// a busy bit, and the handler's interest (Read|Write) in the low bits. A
// removed registration keeps its generation, so the next one gets a new
// one. Busy marks a slot whose registration was just ended by a writer on
// another goroutine that is now waiting, without regMu, for the loop to
// finish serving it (see IOLoop.retireLocked); other writers off the loop
// wait for it to finish, writers on the loop treat the slot as free.
const (
	slotLive     = 1 << 31
	slotBusy     = 1 << 30
	slotInterest = uint64(Read | Write)
)

func packSlot(gen uint32, live bool, interest Events) uint64 {
	st := uint64(gen)<<32 | uint64(interest)&slotInterest
	if live {
		st |= slotLive
	}
	return st
}

func slotGen(st uint64) uint32           { return uint32(st >> 32) }
func slotIsLive(st uint64) bool          { return st&slotLive != 0 }
func slotEvents(st uint64) Events        { return Events(st & slotInterest) }
func eventTag(fd int, gen uint32) uint64 { return uint64(gen)<<32 | uint64(uint32(fd)) }

// nextGen returns the generation after gen. Go registrations use
// 1..2^31-1: zero is the waker's tag, and generations with the top bit set
// belong to C watches (csrc/ioloop_api.h), which the C core serves itself.
func nextGen(gen uint32) uint32 {
	if gen >= maxGoGen {
		return 1
	}
	return gen + 1
}

const maxGoGen = 1<<31 - 1

// slotPageBits sizes the pages of the table: 256 slots, 6 KiB.
const (
	slotPageBits = 8
	slotPageSize = 1 << slotPageBits
)

type slotPage [slotPageSize]handlerSlot

// handlerTable maps fd numbers to handlers. Writers hold IOLoop.regMu; the
// loop reads it without any lock, once per event. That is why it is a
// directory of fixed pages rather than one slice: adding a page publishes
// a new copy of the directory, but a slot, once allocated, never moves, so
// the loop never reads a slot that a writer has copied away. Pages are
// allocated when an fd in their range is first registered, so a loop
// watching fd 5 and fd 100,000 holds two pages, not 400.
type handlerTable struct {
	pages atomic.Pointer[[]*slotPage] // the directory; nil entries: no fd there yet
	count int                         // registered fds; under regMu
}

// lookup returns fd's slot, or nil if no fd near it was ever registered.
// It takes no lock: it is what the loop calls for every event.
func (t *handlerTable) lookup(fd int) *handlerSlot {
	pages := t.pages.Load()
	if pages == nil || fd>>slotPageBits >= len(*pages) {
		return nil
	}
	page := (*pages)[fd>>slotPageBits]
	if page == nil {
		return nil
	}
	return &page[fd&(slotPageSize-1)]
}

// slotFor returns fd's slot, adding its page if needed. Under regMu.
func (t *handlerTable) slotFor(fd int) *handlerSlot {
	if s := t.lookup(fd); s != nil {
		return s
	}
	var old []*slotPage
	if p := t.pages.Load(); p != nil {
		old = *p
	}
	pages := make([]*slotPage, max(len(old), fd>>slotPageBits+1))
	copy(pages, old)
	pages[fd>>slotPageBits] = new(slotPage)
	t.pages.Store(&pages)
	return t.lookup(fd)
}

// each calls fn for every slot that holds a live registration. Under regMu.
func (t *handlerTable) each(fn func(fd int, s *handlerSlot)) {
	p := t.pages.Load()
	if p == nil {
		return
	}
	for i, page := range *p {
		if page == nil {
			continue
		}
		for j := range page {
			if s := &page[j]; slotIsLive(s.state.Load()) {
				fn(i<<slotPageBits|j, s)
			}
		}
	}
}
