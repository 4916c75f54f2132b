/*
 * ioloop.h — the C core of ioloop: one epoll instance, an eventfd waker and
 * an event buffer that lives in C memory.
 *
 * Conventions (after libuv): public names are ioloop_*, internal ones
 * ioloop__*, and every function returns 0 (or a count) on success and
 * -errno on failure. Nothing here prints, aborts or keeps a Go pointer: Go
 * owns the handler table and identifies registrations by (fd, generation),
 * which travel through epoll_data.u64.
 */
#ifndef IOLOOP_H
#define IOLOOP_H

#include <stdint.h>

#include "ioloop_api.h"

/* One ready event, as handed to Go. The kernel's struct epoll_event is
 * packed on x86-64 and padded elsewhere, so we translate into this
 * fixed-layout record instead of making Go decode an ABI-dependent struct. */
typedef struct ioloop_event {
  int32_t fd;
  uint32_t gen;    /* generation of the registration the event was meant for */
  uint32_t events; /* EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP ... */
} ioloop_event;

/* Generation 0 is reserved for the waker. Go registrations use
 * 1..2^31-1; C watches (ioloop_api.h) have the top bit set, which is how a
 * batch tells the two apart without looking anything up. */
#define IOLOOP_WAKE_GEN 0u
#define IOLOOP_CGEN_BIT 0x80000000u

/* Start and ceiling of the event buffer. Like libevent, the buffer doubles
 * whenever a wait fills it, so a burst of ready fds is drained in fewer
 * epoll_wait calls; 4096 is libevent's MAX_NEVENT. */
#define IOLOOP_INITIAL_EVENTS 64
#define IOLOOP_MAX_EVENTS 4096

/* One C watch (ioloop_api.h). state packs the generation (high 32 bits),
 * IOLOOP__CW_LIVE and the events asked for; it is written on the loop
 * thread and read with atomics from any thread (ioloop_ctl, on behalf of
 * Go registrations made off the loop, checks who owns an fd number). cb
 * and arg are the loop thread's alone. */
typedef struct ioloop__cwatch {
  uint64_t state;
  ioloop_io_cb cb;
  void *arg;
} ioloop__cwatch;

#define IOLOOP__CW_LIVE (1u << 30)
#define IOLOOP__CW_PAGE_BITS 8 /* 256 watches, 6 KiB, per page */

/* The fd-indexed table of C watches: a directory of pages. Growing it
 * publishes a new directory and keeps the old one until ioloop_close, and
 * pages never move, so a reader on another thread can never hold a
 * pointer into freed memory. */
typedef struct ioloop__cwdir {
  struct ioloop__cwdir *older; /* the directory this one replaced */
  int npages;
  ioloop__cwatch *pages[];
} ioloop__cwdir;

/* A C timer (ioloop_api.h). Loop thread only. */
struct ioloop_timer {
  struct ioloop_core *core;
  ioloop_timer_cb cb;
  void *arg;
  uint64_t deadline_ns; /* CLOCK_MONOTONIC */
  uint64_t seq;         /* start order: equal deadlines run FIFO, restarts wait a turn */
  int index;            /* position in the heap, -1 when not armed */
  struct ioloop_timer *prev, *next; /* every timer of the core, freed at close */
};

typedef struct ioloop_core {
  int epfd;            /* epoll instance, close-on-exec */
  int wakefd;          /* non-blocking close-on-exec eventfd, always registered for EPOLLIN */
  int cap;             /* capacity of both buffers below */
  int last_n;          /* events returned by the last epoll_wait */
  void *raw;           /* struct epoll_event[cap], filled by epoll_wait */
  ioloop_event *ready; /* ioloop_event[cap], the translated batch (waker and C watches removed) */

  /* The C API (ioloop_api.h), handed out by ioloop_api_table. */
  ioloop_api api;
  ioloop__cwdir *cwdir;  /* C watches; NULL until the first watch; atomic pointer */
  uint32_t cwgen;        /* last C generation handed out (top bit set) */
  ioloop_timer **heap;   /* armed C timers, a min-heap on (deadline_ns, seq) */
  int nheap, capheap;
  uint64_t timerseq;     /* seq of the last start */
  ioloop_timer *timers;  /* list of every C timer, armed or not */

  /* Counters, written by the loop thread only, read from any thread. */
  uint64_t c_events; /* C callbacks run for fd events */
  uint64_t c_stale;  /* C-tagged events dropped (unwatched or re-watched) */
  uint64_t c_timers; /* C timer callbacks run */
} ioloop_poller;

/* ioloop_open creates the epoll instance and the waker; *out is owned by
 * the caller until ioloop_close. */
int ioloop_open(ioloop_poller **out);

/* ioloop_close closes both fds and frees the poller. Safe on NULL. */
void ioloop_close(ioloop_poller *p);

/* ioloop_ctl applies EPOLL_CTL_ADD/MOD/DEL for a Go registration of fd,
 * tagging its events with gen. A number that a C watch holds
 * (ioloop_api.h) is not Go's: ADD fails with -EBUSY while the C watch is
 * real, and MOD and DEL fail with -ENOENT without touching the kernel (the
 * Go registration they name is stale). Safe from any thread. */
int ioloop_ctl(ioloop_poller *p, int op, int fd, uint32_t events, uint32_t gen);

/* ioloop_wait waits up to timeout_ms (-1: forever, 0: poll) and leaves the
 * batch in p->ready. It returns (n << 1) | woken, where n is the number of
 * events in p->ready and woken says the waker fired (and was drained), or
 * -errno. EINTR is a wakeup with zero events, not an error. */
int ioloop_wait(ioloop_poller *p, int timeout_ms);

/* ioloop_poll_batch is one loop iteration's I/O, in one call from Go: it
 * clamps timeout_ms to the nearest C timer, waits (C watches are served
 * inside ioloop_wait), runs the C timers that are due, and leaves the Go
 * registrations' events in p->ready for the caller to dispatch after it
 * returns. No call into Go at all: the cheapest shape, what the loop uses.
 * The event buffer grows (see ioloop__maybe_grow) at the start of the
 * next call, once the caller is done with p->ready. Same return value as
 * ioloop_wait. */
int ioloop_poll_batch(ioloop_poller *p, int timeout_ms);

/* ioloop_poll is ioloop_poll_batch with the Go dispatch done from C: one
 * call into Go's exported ioloopGoDispatch(ctx, p->ready, n) per non-empty
 * batch, after the wait and before the C timers. The benchmarks measure
 * it against ioloop_poll_batch (it costs a C->Go crossing per batch). */
int ioloop_poll(ioloop_poller *p, int timeout_ms, uintptr_t ctx);

/* ioloop_poll_each calls into Go once per event instead. It exists only so
 * that the benchmarks can measure the shape we rejected. */
int ioloop_poll_each(ioloop_poller *p, int timeout_ms, uintptr_t ctx);

/* The entry points Go calls on its hot paths, with the poller as an
 * integer: cgo inspects every pointer argument of a call to see whether it
 * is a Go pointer (cgocheck), which costs tens of ns per call for a
 * pointer that never is one. */
int ioloop_go_poll(uintptr_t p, int timeout_ms);
int ioloop_go_ctl(uintptr_t p, int op, int fd, uint32_t events, uint32_t gen);

/* ioloop_api_table returns p's C API table (ioloop_api.h), valid until
 * ioloop_close. */
ioloop_api *ioloop_api_table(ioloop_poller *p);

/* ioloop_counters copies the C-side counters (any thread). */
void ioloop_counters(ioloop_poller *p, uint64_t *c_events, uint64_t *c_stale, uint64_t *c_timers);

/* Internal. ioloop__epoll_ctl is epoll_ctl with a tag, in ioloop.c; the
 * rest is in ioloop_capi.c. */
int ioloop__epoll_ctl(ioloop_poller *p, int op, int fd, uint32_t events, uint32_t gen);
void ioloop__capi_init(ioloop_poller *p);
void ioloop__capi_free(ioloop_poller *p);
int ioloop__cwatch_owns(ioloop_poller *p, int fd, uint64_t *state);
void ioloop__cwatch_disown(ioloop_poller *p, int fd, uint64_t state);
void ioloop__cwatch_dispatch(ioloop_poller *p, int fd, uint32_t gen, uint32_t events);
int ioloop__timers_clamp(ioloop_poller *p, int timeout_ms);
void ioloop__timers_run(ioloop_poller *p);

#endif /* IOLOOP_H */
