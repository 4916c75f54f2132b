/*
 * ioloop.c — see ioloop.h. Compiled through the root shim ioloop_linux.c,
 * because cgo only compiles .c files in the package directory.
 */
#include "ioloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Implemented in Go (loop_cgo.go, //export). */
extern void ioloopGoDispatch(uintptr_t ctx, ioloop_event *events, int n);

static uint64_t ioloop__tag(int fd, uint32_t gen) {
  return ((uint64_t)gen << 32) | (uint32_t)fd;
}

static int ioloop__alloc(ioloop_poller *p, int cap) {
  void *raw = malloc((size_t)cap * sizeof(struct epoll_event));
  ioloop_event *ready = malloc((size_t)cap * sizeof(ioloop_event));
  if (raw == NULL || ready == NULL) {
    free(raw);
    free(ready);
    return -ENOMEM;
  }
  free(p->raw);
  free(p->ready);
  p->raw = raw;
  p->ready = ready;
  p->cap = cap;
  return 0;
}

int ioloop_open(ioloop_poller **out) {
  ioloop_poller *p = calloc(1, sizeof(*p));
  int rc;
  if (p == NULL)
    return -ENOMEM;
  p->epfd = -1;
  p->wakefd = -1;
  ioloop__capi_init(p);

  /* Every fd we create is close-on-exec: a service that forks helpers
   * must not leak its poller into them. */
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) {
    rc = -errno;
    goto fail;
  }
  p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->wakefd < 0) {
    rc = -errno;
    goto fail;
  }
  rc = ioloop__epoll_ctl(p, EPOLL_CTL_ADD, p->wakefd, EPOLLIN, IOLOOP_WAKE_GEN);
  if (rc < 0)
    goto fail;
  rc = ioloop__alloc(p, IOLOOP_INITIAL_EVENTS);
  if (rc < 0)
    goto fail;
  *out = p;
  return 0;

fail:
  ioloop_close(p);
  return rc;
}

void ioloop_close(ioloop_poller *p) {
  if (p == NULL)
    return;
  if (p->wakefd >= 0)
    close(p->wakefd);
  if (p->epfd >= 0)
    close(p->epfd);
  ioloop__capi_free(p);
  free(p->raw);
  free(p->ready);
  free(p);
}

int ioloop__epoll_ctl(ioloop_poller *p, int op, int fd, uint32_t events, uint32_t gen) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.u64 = ioloop__tag(fd, gen);
  if (epoll_ctl(p->epfd, op, fd, &ev) < 0)
    return -errno;
  return 0;
}

int ioloop_ctl(ioloop_poller *p, int op, int fd, uint32_t events, uint32_t gen) {
  uint64_t cstate;
  int rc;
  if (__atomic_load_n(&p->cwdir, __ATOMIC_ACQUIRE) == NULL || !ioloop__cwatch_owns(p, fd, &cstate))
    return ioloop__epoll_ctl(p, op, fd, events, gen);
  if (op != EPOLL_CTL_ADD)
    return -ENOENT;
  rc = ioloop__epoll_ctl(p, op, fd, events, gen);
  if (rc == -EEXIST)
    return -EBUSY;
  if (rc == 0) /* the C watch's file was closed without unwatch: it is stale */
    ioloop__cwatch_disown(p, fd, cstate);
  return rc;
}

/* Drain the eventfd so that level-triggered epoll stops reporting it. The
 * counter may have been bumped many times; one read resets it to zero. */
static void ioloop__drain_waker(ioloop_poller *p) {
  uint64_t count;
  ssize_t r;
  do {
    r = read(p->wakefd, &count, sizeof(count));
  } while (r < 0 && errno == EINTR);
  /* EAGAIN: someone else's read won the race, nothing left to drain. */
}

int ioloop_wait(ioloop_poller *p, int timeout_ms) {
  struct epoll_event *raw;
  int n, i, out = 0, woken = 0;

  p->last_n = 0;
  n = epoll_wait(p->epfd, (struct epoll_event *)p->raw, p->cap, timeout_ms);
  if (n < 0) {
    if (errno == EINTR)
      return 0; /* a signal: the caller recomputes its timeout and retries */
    return -errno;
  }
  p->last_n = n;

  raw = (struct epoll_event *)p->raw;
  for (i = 0; i < n; i++) {
    uint64_t tag = raw[i].data.u64;
    uint32_t gen = (uint32_t)(tag >> 32);
    if (gen == IOLOOP_WAKE_GEN) {
      ioloop__drain_waker(p);
      woken = 1;
      continue;
    }
    if (gen & IOLOOP_CGEN_BIT) { /* a C watch: served here, Go never sees it */
      ioloop__cwatch_dispatch(p, (int)(uint32_t)tag, gen, raw[i].events);
      continue;
    }
    p->ready[out].fd = (int32_t)(uint32_t)tag;
    p->ready[out].gen = gen;
    p->ready[out].events = raw[i].events;
    out++;
  }
  return (out << 1) | woken;
}

/* A wait that filled the buffer means more fds may be ready than one call
 * can take: double the buffer (up to the ceiling) so the next wait drains
 * the burst in fewer calls. Runs after dispatch, when Go no longer reads
 * p->ready. Level-triggered epoll reports what we missed again next time,
 * and rotates the ready list, so nothing starves even before growing. */
static void ioloop__maybe_grow(ioloop_poller *p) {
  if (p->last_n >= p->cap && p->cap < IOLOOP_MAX_EVENTS)
    (void)ioloop__alloc(p, p->cap * 2); /* on ENOMEM keep the old buffer */
}

int ioloop_poll_batch(ioloop_poller *p, int timeout_ms) {
  int rc;
  ioloop__maybe_grow(p); /* Go is done with the previous batch by now */
  rc = ioloop_wait(p, ioloop__timers_clamp(p, timeout_ms));
  ioloop__timers_run(p);
  return rc;
}

int ioloop_go_poll(uintptr_t p, int timeout_ms) { return ioloop_poll_batch((ioloop_poller *)p, timeout_ms); }

int ioloop_go_ctl(uintptr_t p, int op, int fd, uint32_t events, uint32_t gen) {
  return ioloop_ctl((ioloop_poller *)p, op, fd, events, gen);
}

int ioloop_poll(ioloop_poller *p, int timeout_ms, uintptr_t ctx) {
  int rc = ioloop_wait(p, ioloop__timers_clamp(p, timeout_ms));
  if (rc > 1)
    ioloopGoDispatch(ctx, p->ready, rc >> 1);
  ioloop__timers_run(p);
  ioloop__maybe_grow(p);
  return rc;
}

int ioloop_poll_each(ioloop_poller *p, int timeout_ms, uintptr_t ctx) {
  int rc = ioloop_wait(p, ioloop__timers_clamp(p, timeout_ms));
  int i;
  for (i = 0; i < (rc >> 1); i++)
    ioloopGoDispatch(ctx, &p->ready[i], 1);
  ioloop__timers_run(p);
  ioloop__maybe_grow(p);
  return rc;
}
