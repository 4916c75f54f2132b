//go:build linux && cgo

// Package capitest is a small C "library" that runs on an ioloop through
// the C API (csrc/ioloop_api.h), the way a cgo package wrapping libcurl or
// c-ares would: it only ever sees the function table that
// IOLoop.CAPI hands out. The tests use it to check the API from Go: every
// call here must happen on the loop's thread (inside a loop callback).
package capitest

/*
#cgo CFLAGS: -I${SRCDIR}/../../csrc -O2 -std=gnu11 -Wall -Wextra
#include "ioloop_api.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

// A reader drains an fd into a byte count, unwatching it at EOF or error.
typedef struct reader {
	ioloop_api *api;
	int fd;
	uint64_t bytes, calls;
	long tid;      // thread of the last callback
	int done;      // EOF or error seen, fd unwatched
	int rewatch;   // re-watch the fd from inside each callback (a new generation each time)
} reader;

static void reader_cb(int fd, uint32_t events, void *arg) {
	reader *r = arg;
	char buf[4096];
	ssize_t n;
	r->calls++;
	r->tid = syscall(SYS_gettid);
	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n > 0) {
			r->bytes += (uint64_t)n;
			continue;
		}
		break;
	}
	if (n == 0 || (n < 0 && errno != EAGAIN)) {
		r->api->unwatch(r->api->core, fd);
		r->done = 1;
		return;
	}
	if (r->rewatch)
		r->api->watch(r->api->core, fd, IOLOOP_READ, reader_cb, r);
	(void)events;
}

static reader *reader_new(void *api, int fd, int rewatch) {
	reader *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->api = api;
	r->fd = fd;
	r->rewatch = rewatch;
	return r;
}

static int reader_start(reader *r) {
	return r->api->watch(r->api->core, r->fd, IOLOOP_READ, reader_cb, r);
}

static int reader_stop(reader *r) { return r->api->unwatch(r->api->core, r->fd); }

// A ticker restarts its timer from its own callback until it ran max times.
typedef struct ticker {
	ioloop_api *api;
	ioloop_timer *t;
	uint64_t interval_ms;
	int runs, max;
	uint64_t first_ms, last_ms;
	long tid;
} ticker;

static void tick(ioloop_timer *t, void *arg) {
	ticker *k = arg;
	uint64_t now = k->api->now_ms(k->api->core);
	if (k->runs++ == 0)
		k->first_ms = now;
	k->last_ms = now;
	k->tid = syscall(SYS_gettid);
	if (k->runs < k->max)
		k->api->timer_start(t, k->interval_ms);
}

static ticker *ticker_new(void *api, uint64_t interval_ms, int max) {
	ticker *k = calloc(1, sizeof *k);
	if (k == NULL)
		return NULL;
	k->api = api;
	k->interval_ms = interval_ms;
	k->max = max;
	k->t = k->api->timer_new(k->api->core, tick, k);
	if (k->t == NULL) {
		free(k);
		return NULL;
	}
	return k;
}

static int ticker_start(ticker *k) { return k->api->timer_start(k->t, k->interval_ms); }

static void ticker_free(ticker *k) {
	k->api->timer_free(k->t);
	free(k);
}

static int api_version(void *api) {
	ioloop_api *a = api;
	if (a->version < 1 || a->size < sizeof(ioloop_api))
		return -1;
	return (int)a->version;
}
*/
import "C"

import (
	"syscall"
	"unsafe"
)

// Version checks the table as a third-party package would: its version,
// or -1 if it is older or smaller than this header's.
func Version(api unsafe.Pointer) int { return int(C.api_version(api)) }

// Reader is a C reader (see the preamble); its fields are read on the loop.
type Reader struct{ r *C.reader }

// NewReader makes a reader of fd on the loop whose table is api. With
// rewatch, its callback re-watches the fd each time (new generations).
func NewReader(api unsafe.Pointer, fd int, rewatch bool) *Reader {
	rw := C.int(0)
	if rewatch {
		rw = 1
	}
	return &Reader{C.reader_new(api, C.int(fd), rw)}
}

// Start watches the fd; the error is the API's -errno.
func (r *Reader) Start() error { return errno(C.reader_start(r.r)) }

// Stop unwatches the fd.
func (r *Reader) Stop() error { return errno(C.reader_stop(r.r)) }

// Bytes, Calls, Done and TID report what the C callbacks saw.
func (r *Reader) Bytes() uint64 { return uint64(r.r.bytes) }
func (r *Reader) Calls() uint64 { return uint64(r.r.calls) }
func (r *Reader) Done() bool    { return r.r.done != 0 }
func (r *Reader) TID() int      { return int(r.r.tid) }

// Free releases the reader (after Stop, or once Done).
func (r *Reader) Free() { C.free(unsafe.Pointer(r.r)) }

// Ticker is a C timer that restarts itself from its own callback.
type Ticker struct{ k *C.ticker }

// NewTicker makes a ticker that runs max times, interval apart.
func NewTicker(api unsafe.Pointer, intervalMs uint64, max int) *Ticker {
	return &Ticker{C.ticker_new(api, C.uint64_t(intervalMs), C.int(max))}
}

// Start arms it.
func (k *Ticker) Start() error { return errno(C.ticker_start(k.k)) }

// Runs, Span and TID report what its callbacks saw; Span is the time from
// the first run to the last, in ms.
func (k *Ticker) Runs() int      { return int(k.k.runs) }
func (k *Ticker) SpanMs() uint64 { return uint64(k.k.last_ms - k.k.first_ms) }
func (k *Ticker) TID() int       { return int(k.k.tid) }

// Free frees the timer and the ticker.
func (k *Ticker) Free() { C.ticker_free(k.k) }

func errno(rc C.int) error {
	if rc < 0 {
		return syscall.Errno(-rc)
	}
	return nil
}
