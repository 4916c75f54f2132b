/*
 * ioloop_api.h — the C API of an ioloop loop, for C code linked into the
 * same program (a cgo package driving a C library: libcurl, c-ares, libpq,
 * ZeroMQ...). Version 1.
 *
 * What it gives you: fd watchers and timers whose callbacks are C
 * functions, run by the loop's C core on the loop's OS thread, inside the
 * same epoll_wait batch as the loop's Go handlers but without crossing
 * into Go at all. The shape is libevent's and libuv's: watch an fd for
 * IOLOOP_READ/IOLOOP_WRITE and get (fd, events, arg) back; create a timer,
 * start it for a delay, get (timer, arg) back.
 *
 * How you reach it. The API is a table of function pointers, handed out at
 * run time by the loop (JNI's JNIEnv, Python's capsules): from Go,
 *
 *     p, err := loop.CAPI()            // unsafe.Pointer to an ioloop_api
 *     C.my_library_attach((*C.ioloop_api)(p), ...)
 *
 * Calling through the table needs no symbol of ioloop at link time, so a
 * package in any module can use it: copy this header into your package
 * (`go run github.com/ioloop-go/ioloop/cmd/ioloop-capi-header -o
 * ioloop_api.h` writes the one matching your ioloop version) and check
 * api->version and api->size once. A version only ever grows by appending
 * members; IOLOOP_API_VERSION 1 code works with any loop whose
 * version >= 1 and size >= sizeof(ioloop_api).
 *
 * Rules (the loop's own, as in libuv: "not thread-safe unless stated"):
 *   - Every call, and every callback, happens on the loop's thread: inside
 *     a callback of this API, or inside a Go handler, callback or timer of
 *     the loop (from Go on another goroutine, hop over with
 *     loop.AddCallback). Thread-affine C libraries just work: the loop's
 *     goroutine is locked to its OS thread while it runs.
 *   - Every function returns 0 (or a value) on success and -errno on
 *     failure; nothing prints or aborts.
 *   - Watchers are keyed by fd number, like the loop's Go handlers. One fd
 *     number is owned either by C watchers or by a Go handler of the same
 *     loop, never both: watch() of an fd that has a Go handler fails with
 *     -EEXIST, and the loop's AddHandler of an fd watched here fails
 *     (EBUSY).
 *   - Each watch carries a generation through epoll_data, as Go handlers
 *     do: once unwatch() returns, or watch() replaced the registration, no
 *     event for the old one is ever delivered, not even one already in the
 *     batch being dispatched. unwatch() and watch() are legal inside any
 *     callback, including the fd's own.
 *   - Unwatch before you close an fd (libcurl does: CURL_POLL_REMOVE comes
 *     before the close). An fd closed while watched stays reserved for C
 *     under its number until watch() or unwatch() is called for it again;
 *     unwatch() of a number whose file is gone is harmless (-ENOENT, and
 *     nothing else on the loop is touched).
 *   - Timers fold into the loop's wait: it never sleeps past a C
 *     deadline. In an iteration, the C core first serves the batch's fd
 *     events, then runs the timers that are due, so a timer started with
 *     delay 0 from an fd callback runs right after the whole batch, in the
 *     same iteration: the place to act once per batch (libcurl's
 *     integration hands completed transfers to Go there, once). A timer may
 *     be restarted or freed from its own callback; restarted with delay 0
 *     it runs in the next iteration, not in the same one (so a timer cannot
 *     starve I/O).
 *   - Everything is valid until the loop is closed. The loop's Close runs
 *     the hooks registered with loop.OnClose (Go) first, while the API
 *     still works, then frees every timer still allocated and forgets
 *     every watch; after that, using the table or a timer is undefined.
 */
#ifndef IOLOOP_API_H
#define IOLOOP_API_H

#include <stdint.h>

#define IOLOOP_API_VERSION 1

/* Event bits: exactly epoll's. IOLOOP_ERROR (EPOLLERR|EPOLLHUP) is
 * reported whether or not it was asked for. */
#define IOLOOP_READ 0x001u  /* EPOLLIN */
#define IOLOOP_WRITE 0x004u /* EPOLLOUT */
#define IOLOOP_ERROR 0x018u /* EPOLLERR | EPOLLHUP */

typedef struct ioloop_core ioloop_core;   /* one loop's C core; opaque */
typedef struct ioloop_timer ioloop_timer; /* a timer; opaque, owned by the core */

/* fd is ready for events (a subset of what was asked for, plus any
 * IOLOOP_ERROR bits). */
typedef void (*ioloop_io_cb)(int fd, uint32_t events, void *arg);

/* t is due. */
typedef void (*ioloop_timer_cb)(ioloop_timer *t, void *arg);

typedef struct ioloop_api {
  uint32_t version; /* IOLOOP_API_VERSION of the loop */
  uint32_t size;    /* sizeof(ioloop_api) of the loop */
  ioloop_core *core;

  /* watch starts watching fd for events (IOLOOP_READ|IOLOOP_WRITE, or 0 to
   * keep only error reports), calling cb(fd, events, arg); called again
   * for a watched fd, it changes the events, cb and arg (with a new
   * generation: nothing queued for the old registration is delivered).
   * Errors: -EBADF, -EPERM (a regular file: epoll cannot watch it),
   * -EEXIST (a Go handler of this loop owns fd), -EINVAL (bad events or
   * NULL cb), -ENOMEM. */
  int (*watch)(ioloop_core *c, int fd, uint32_t events, ioloop_io_cb cb, void *arg);

  /* unwatch stops watching fd; its callback is never called again. -ENOENT
   * if fd is not watched (or its file was closed and its number taken by
   * someone else since: then nothing is changed). */
  int (*unwatch)(ioloop_core *c, int fd);

  /* timer_new creates a stopped timer; NULL when out of memory. */
  ioloop_timer *(*timer_new)(ioloop_core *c, ioloop_timer_cb cb, void *arg);

  /* timer_start (re)arms t to run once, delay_ms from now. 0 means as
   * soon as possible: after the current batch's fd callbacks when called
   * from one of them, else in the next iteration. */
  int (*timer_start)(ioloop_timer *t, uint64_t delay_ms);

  /* timer_stop disarms t; a no-op if it is not armed. */
  int (*timer_stop)(ioloop_timer *t);

  /* timer_free stops and frees t (legal inside t's own callback). */
  void (*timer_free)(ioloop_timer *t);

  /* now_ms is the loop's monotonic clock (CLOCK_MONOTONIC) in ms, the
   * clock timers are measured on. */
  uint64_t (*now_ms)(ioloop_core *c);
} ioloop_api;

#endif /* IOLOOP_API_H */
