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

/* One ready event, as handed to Go. The kernel's struct epoll_event is
 * packed on x86-64 and padded elsewhere, so we translate into this
 * fixed-layout record instead of making Go decode an ABI-dependent struct. */
typedef struct ioloop_event {
  int32_t fd;
  uint32_t gen;    /* generation of the registration the event was meant for */
  uint32_t events; /* EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP ... */
} ioloop_event;

/* Generation 0 is reserved for the waker; registrations use 1..2^32-1. */
#define IOLOOP_WAKE_GEN 0u

/* Start and ceiling of the event buffer. Like libevent, the buffer doubles
 * whenever a wait fills it, so a burst of ready fds is drained in fewer
 * epoll_wait calls; 4096 is libevent's MAX_NEVENT. */
#define IOLOOP_INITIAL_EVENTS 64
#define IOLOOP_MAX_EVENTS 4096

typedef struct ioloop_poller {
  int epfd;            /* epoll instance, close-on-exec */
  int wakefd;          /* non-blocking close-on-exec eventfd, always registered for EPOLLIN */
  int cap;             /* capacity of both buffers below */
  void *raw;           /* struct epoll_event[cap], filled by epoll_wait */
  ioloop_event *ready; /* ioloop_event[cap], the translated batch (waker removed) */
} ioloop_poller;

/* ioloop_open creates the epoll instance and the waker; *out is owned by
 * the caller until ioloop_close. */
int ioloop_open(ioloop_poller **out);

/* ioloop_close closes both fds and frees the poller. Safe on NULL. */
void ioloop_close(ioloop_poller *p);

/* ioloop_ctl applies EPOLL_CTL_ADD/MOD/DEL for fd, tagging events with gen. */
int ioloop_ctl(ioloop_poller *p, int op, int fd, uint32_t events, uint32_t gen);

/* ioloop_wait waits up to timeout_ms (-1: forever, 0: poll) and leaves the
 * batch in p->ready. It returns (n << 1) | woken, where n is the number of
 * events in p->ready and woken says the waker fired (and was drained), or
 * -errno. EINTR is a wakeup with zero events, not an error. */
int ioloop_wait(ioloop_poller *p, int timeout_ms);

/* ioloop_poll is ioloop_wait followed, when the batch is not empty, by one
 * call into Go's exported ioloopGoDispatch(ctx, p->ready, n): one cgo
 * crossing each way per batch, however many events it holds. Same return
 * value as ioloop_wait. */
int ioloop_poll(ioloop_poller *p, int timeout_ms, uintptr_t ctx);

/* ioloop_poll_each calls into Go once per event instead. It exists only so
 * that the benchmarks can measure the shape we rejected. */
int ioloop_poll_each(ioloop_poller *p, int timeout_ms, uintptr_t ctx);

#endif /* IOLOOP_H */
