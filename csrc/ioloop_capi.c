/*
 * ioloop_capi.c — the C API of ioloop_api.h: fd watches and timers whose
 * callbacks are C functions, served by the core inside the loop's own
 * epoll_wait batch without crossing into Go. Compiled through the root
 * shim ioloop_linux.c, with ioloop.c.
 *
 * Everything here runs on the loop thread, except ioloop__cwatch_owns and
 * ioloop__cwatch_disown, which ioloop_ctl calls on behalf of Go
 * registrations made from any goroutine: they only load and compare-and-
 * swap a watch's state word, and the table is built so that they never
 * read freed memory (see ioloop__cwdir in ioloop.h).
 */
#include "ioloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#define CW_PAGE (1 << IOLOOP__CW_PAGE_BITS)
#define CW_EVENTS ((uint64_t)(IOLOOP_READ | IOLOOP_WRITE))

static uint64_t cw_pack(uint32_t gen, int live, uint32_t events) {
  return ((uint64_t)gen << 32) | (live ? IOLOOP__CW_LIVE : 0) | (events & CW_EVENTS);
}

static int cw_live(uint64_t st) { return (st & IOLOOP__CW_LIVE) != 0; }
static uint32_t cw_gen(uint64_t st) { return (uint32_t)(st >> 32); }

/* Counters are written by the loop thread only: a relaxed load and store
 * (a plain add on x86) is enough for readers on other threads. */
static void count(uint64_t *c) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* ---- the fd-indexed table ---- */

/* cw_find returns fd's watch, or NULL if its page was never allocated. Any
 * thread. */
static ioloop__cwatch *cw_find(ioloop_poller *p, int fd) {
  ioloop__cwdir *d = __atomic_load_n(&p->cwdir, __ATOMIC_ACQUIRE);
  ioloop__cwatch *page;
  if (d == NULL || fd < 0 || (fd >> IOLOOP__CW_PAGE_BITS) >= d->npages)
    return NULL;
  page = __atomic_load_n(&d->pages[fd >> IOLOOP__CW_PAGE_BITS], __ATOMIC_ACQUIRE);
  return page == NULL ? NULL : &page[fd & (CW_PAGE - 1)];
}

/* cw_slot returns fd's watch, allocating its page (and a larger
 * directory) as needed. Loop thread. */
static ioloop__cwatch *cw_slot(ioloop_poller *p, int fd) {
  ioloop__cwdir *d = p->cwdir, *nd;
  int pg = fd >> IOLOOP__CW_PAGE_BITS, n, i;
  ioloop__cwatch *page;

  if (d == NULL || pg >= d->npages) {
    n = d == NULL ? 4 : d->npages;
    while (n <= pg)
      n *= 2;
    nd = calloc(1, sizeof(*nd) + (size_t)n * sizeof(nd->pages[0]));
    if (nd == NULL)
      return NULL;
    nd->npages = n;
    nd->older = d;
    for (i = 0; d != NULL && i < d->npages; i++)
      nd->pages[i] = d->pages[i];
    /* The old directory stays allocated (nd->older) until ioloop_close:
     * another thread may be reading it right now. */
    __atomic_store_n(&p->cwdir, nd, __ATOMIC_RELEASE);
    d = nd;
  }
  page = d->pages[pg];
  if (page == NULL) {
    page = calloc(CW_PAGE, sizeof(*page));
    if (page == NULL)
      return NULL;
    __atomic_store_n(&d->pages[pg], page, __ATOMIC_RELEASE);
  }
  return &page[fd & (CW_PAGE - 1)];
}

/* ioloop__cwatch_owns reports whether a live C watch holds fd's number,
 * and its state. Any thread. */
int ioloop__cwatch_owns(ioloop_poller *p, int fd, uint64_t *state) {
  ioloop__cwatch *w = cw_find(p, fd);
  uint64_t st = w == NULL ? 0 : __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
  if (state != NULL)
    *state = st;
  return cw_live(st);
}

/* ioloop__cwatch_disown ends the C watch of fd whose state was state,
 * after a Go registration got the number from the kernel: the watched file
 * was closed without unwatch, so the watch is stale and must never touch
 * the kernel's registration for the new file. Any thread; a no-op if the
 * watch changed meanwhile. */
void ioloop__cwatch_disown(ioloop_poller *p, int fd, uint64_t state) {
  ioloop__cwatch *w = cw_find(p, fd);
  uint64_t dead = cw_pack(cw_gen(state), 0, 0);
  if (w != NULL)
    __atomic_compare_exchange_n(&w->state, &state, dead, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* ---- watch / unwatch ---- */

static uint32_t cw_next_gen(ioloop_poller *p) {
  p->cwgen = (p->cwgen + 1) | IOLOOP_CGEN_BIT;
  if (p->cwgen == IOLOOP_CGEN_BIT) /* the low bits wrapped to 0 */
    p->cwgen = IOLOOP_CGEN_BIT | 1;
  return p->cwgen;
}

static int capi_watch(ioloop_core *p, int fd, uint32_t events, ioloop_io_cb cb, void *arg) {
  ioloop__cwatch *w;
  uint64_t old, reserved, st;
  uint32_t gen;
  int rc;

  if (fd < 0)
    return -EBADF;
  if (cb == NULL || (events & ~(IOLOOP_READ | IOLOOP_WRITE | IOLOOP_ERROR)) != 0)
    return -EINVAL;
  events &= IOLOOP_READ | IOLOOP_WRITE;
  w = cw_slot(p, fd);
  if (w == NULL)
    return -ENOMEM;
  old = __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
  gen = cw_next_gen(p);
  /* Publish the new generation as live before the kernel hears of it, so
   * that a Go AddHandler racing for the same number on another thread
   * sees a C owner (and fails with EBUSY) rather than a leftover watch to
   * take over. */
  reserved = cw_pack(gen, 1, events);
  if (!__atomic_compare_exchange_n(&w->state, &old, reserved, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return -EEXIST; /* a Go registration just disowned this number */
  rc = ioloop__epoll_ctl(p, cw_live(old) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, events, gen);
  if (rc == -ENOENT && cw_live(old)) /* the watched file is gone: watch the new one */
    rc = ioloop__epoll_ctl(p, EPOLL_CTL_ADD, fd, events, gen);
  if (rc < 0) {
    st = reserved;
    __atomic_compare_exchange_n(&w->state, &st, cw_pack(gen, 0, 0), 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    return rc; /* -EEXIST: a Go handler of this loop owns fd */
  }
  w->cb = cb;
  w->arg = arg;
  return 0;
}

static int capi_unwatch(ioloop_core *p, int fd) {
  ioloop__cwatch *w = cw_find(p, fd);
  uint64_t st = w == NULL ? 0 : __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
  if (!cw_live(st))
    return -ENOENT;
  if (!__atomic_compare_exchange_n(&w->state, &st, cw_pack(cw_gen(st), 0, 0), 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_RELAXED))
    return -ENOENT; /* disowned by a Go registration meanwhile */
  w->cb = NULL;
  w->arg = NULL;
  /* Errors mean the file is already gone from the interest list (closed:
   * EBADF; its number now another file's: ENOENT): nothing to undo. */
  (void)ioloop__epoll_ctl(p, EPOLL_CTL_DEL, fd, 0, 0);
  return 0;
}

/* ioloop__cwatch_dispatch serves one C-tagged event of a batch. The
 * generation check drops events for a watch that an earlier callback of
 * the same batch removed or replaced. Loop thread. */
void ioloop__cwatch_dispatch(ioloop_poller *p, int fd, uint32_t gen, uint32_t events) {
  ioloop__cwatch *w = cw_find(p, fd);
  uint64_t st = w == NULL ? 0 : __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
  uint32_t ready;
  if (!cw_live(st) || cw_gen(st) != gen) {
    count(&p->c_stale);
    return;
  }
  ready = events & ((uint32_t)(st & CW_EVENTS) | IOLOOP_ERROR);
  if (ready == 0)
    return;
  count(&p->c_events);
  w->cb(fd, ready, w->arg);
}

/* ---- timers ---- */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int t_less(const ioloop_timer *a, const ioloop_timer *b) {
  return a->deadline_ns < b->deadline_ns || (a->deadline_ns == b->deadline_ns && a->seq < b->seq);
}

static void t_set(ioloop_poller *p, int i, ioloop_timer *t) {
  p->heap[i] = t;
  t->index = i;
}

static void t_up(ioloop_poller *p, int i) {
  ioloop_timer *t = p->heap[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!t_less(t, p->heap[parent]))
      break;
    t_set(p, i, p->heap[parent]);
    i = parent;
  }
  t_set(p, i, t);
}

static void t_down(ioloop_poller *p, int i) {
  ioloop_timer *t = p->heap[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= p->nheap)
      break;
    if (c + 1 < p->nheap && t_less(p->heap[c + 1], p->heap[c]))
      c++;
    if (!t_less(p->heap[c], t))
      break;
    t_set(p, i, p->heap[c]);
    i = c;
  }
  t_set(p, i, t);
}

static void t_remove(ioloop_poller *p, ioloop_timer *t) {
  int i = t->index;
  ioloop_timer *last;
  if (i < 0)
    return;
  t->index = -1;
  last = p->heap[--p->nheap];
  if (last == t)
    return;
  t_set(p, i, last);
  t_down(p, i);
  t_up(p, last->index);
}

static ioloop_timer *capi_timer_new(ioloop_core *p, ioloop_timer_cb cb, void *arg) {
  ioloop_timer *t;
  if (cb == NULL)
    return NULL;
  t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->core = p;
  t->cb = cb;
  t->arg = arg;
  t->index = -1;
  t->next = p->timers;
  if (p->timers != NULL)
    p->timers->prev = t;
  p->timers = t;
  return t;
}

static int capi_timer_start(ioloop_timer *t, uint64_t delay_ms) {
  ioloop_poller *p = t->core;
  if (delay_ms > UINT64_MAX / 2000000u)
    delay_ms = UINT64_MAX / 2000000u; /* "never", without overflowing */
  if (t->index < 0) {
    if (p->nheap == p->capheap) {
      int ncap = p->capheap == 0 ? 16 : 2 * p->capheap;
      ioloop_timer **nh = realloc(p->heap, (size_t)ncap * sizeof(*nh));
      if (nh == NULL)
        return -ENOMEM;
      p->heap = nh;
      p->capheap = ncap;
    }
  } else {
    t_remove(p, t);
  }
  t->deadline_ns = mono_ns() + delay_ms * 1000000u;
  t->seq = ++p->timerseq;
  t_set(p, p->nheap++, t);
  t_up(p, t->index);
  return 0;
}

static int capi_timer_stop(ioloop_timer *t) {
  t_remove(t->core, t);
  return 0;
}

static void capi_timer_free(ioloop_timer *t) {
  ioloop_poller *p;
  if (t == NULL)
    return;
  p = t->core;
  t_remove(p, t);
  if (t->prev != NULL)
    t->prev->next = t->next;
  else
    p->timers = t->next;
  if (t->next != NULL)
    t->next->prev = t->prev;
  free(t);
}

static uint64_t capi_now_ms(ioloop_core *p) {
  (void)p;
  return mono_ns() / 1000000u;
}

/* ioloop__timers_clamp shortens a wait so that it ends by the nearest C
 * deadline. Like the Go side, a wait under 1 ms rounds up, never down to 0,
 * so a timer due in 300 us does not make the loop spin. */
int ioloop__timers_clamp(ioloop_poller *p, int timeout_ms) {
  uint64_t now, left, ms;
  if (p->nheap == 0)
    return timeout_ms;
  now = mono_ns();
  if (p->heap[0]->deadline_ns <= now)
    return 0;
  left = p->heap[0]->deadline_ns - now;
  ms = (left + 999999u) / 1000000u;
  if (timeout_ms >= 0 && (uint64_t)timeout_ms <= ms)
    return timeout_ms;
  return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* ioloop__timers_run runs the C timers that are due, earliest first. A
 * timer started during this run (even from its own callback with delay 0)
 * has a seq past the limit and waits for the next iteration. Each timer is
 * off the heap before its callback runs, so the callback may restart,
 * stop or free it, or any other timer. */
void ioloop__timers_run(ioloop_poller *p) {
  uint64_t now, limit = p->timerseq;
  if (p->nheap == 0)
    return;
  now = mono_ns();
  while (p->nheap > 0) {
    ioloop_timer *t = p->heap[0];
    if (t->deadline_ns > now || t->seq > limit)
      break;
    t_remove(p, t);
    count(&p->c_timers);
    t->cb(t, t->arg);
  }
}

/* ---- the table, setup and teardown ---- */

void ioloop__capi_init(ioloop_poller *p) {
  p->api.version = IOLOOP_API_VERSION;
  p->api.size = sizeof(ioloop_api);
  p->api.core = p;
  p->api.watch = capi_watch;
  p->api.unwatch = capi_unwatch;
  p->api.timer_new = capi_timer_new;
  p->api.timer_start = capi_timer_start;
  p->api.timer_stop = capi_timer_stop;
  p->api.timer_free = capi_timer_free;
  p->api.now_ms = capi_now_ms;
  p->cwgen = IOLOOP_CGEN_BIT;
}

void ioloop__capi_free(ioloop_poller *p) {
  ioloop__cwdir *d = p->cwdir, *older;
  int i;
  while (p->timers != NULL) {
    ioloop_timer *t = p->timers;
    p->timers = t->next;
    free(t);
  }
  free(p->heap);
  p->heap = NULL;
  p->nheap = p->capheap = 0;
  if (d != NULL) {
    for (i = 0; i < d->npages; i++)
      free(d->pages[i]);
  }
  for (; d != NULL; d = older) {
    older = d->older;
    free(d);
  }
  p->cwdir = NULL;
}

ioloop_api *ioloop_api_table(ioloop_poller *p) { return &p->api; }

void ioloop_counters(ioloop_poller *p, uint64_t *c_events, uint64_t *c_stale, uint64_t *c_timers) {
  *c_events = __atomic_load_n(&p->c_events, __ATOMIC_RELAXED);
  *c_stale = __atomic_load_n(&p->c_stale, __ATOMIC_RELAXED);
  *c_timers = __atomic_load_n(&p->c_timers, __ATOMIC_RELAXED);
}
