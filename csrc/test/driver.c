/*
 * driver.c — a C-level test driver for the ioloop core (csrc/ioloop.c),
 * without Go: csan_test.go builds it with -fsanitize=address,undefined
 * and runs it, then builds it plainly and runs it under valgrind.
 *
 * It exercises every entry point and error path: open/close (also when
 * epoll_create1, eventfd or an allocation fails), ctl (bad fd, EEXIST,
 * ENOENT, EPERM, EINVAL), wait/poll/poll_each (tags, the waker, EINTR, a
 * failing epoll_wait), and the event buffer growing from 64 to its 4096
 * ceiling under bursts, also when the allocation for growing fails. It
 * checks that no fd is left open; the sanitizers and valgrind check memory.
 *
 * ioloopGoDispatch, normally Go's //export, is a stub here that records
 * the batches. Allocation failures are injected by linking with
 * -Wl,--wrap=malloc,--wrap=calloc: only references from the objects
 * being linked (ioloop.c) are redirected; libc's own allocations are not.
 *
 * Output: one line per failed check on stderr, then
 * "driver: N checks, M failures"; the exit status is 1 on any failure.
 */
#define _GNU_SOURCE
#include "../ioloop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    checks++;                                                                \
    if (!(cond)) {                                                           \
      failures++;                                                            \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
    }                                                                        \
  } while (0)

/* ---- allocation fault injection (-Wl,--wrap=malloc,--wrap=calloc) ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);

/* fail_in: -1 never; k >= 0: the allocation k calls from now fails (once). */
static int fail_in = -1;
static int injected_alloc_failures;

static int alloc_should_fail(void) {
  if (fail_in < 0)
    return 0;
  if (fail_in-- == 0) {
    injected_alloc_failures++;
    return 1;
  }
  return 0;
}

void *__wrap_malloc(size_t n) { return alloc_should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) {
  return alloc_should_fail() ? NULL : __real_calloc(n, size);
}

/* ---- the Go side, stubbed ---- */

#define DISPATCH_CTX ((uintptr_t)0x10100F)
#define MAX_RECORDED 8192

static struct {
  int calls;
  int n;
  int max_batch;
  ioloop_event evs[MAX_RECORDED];
} got;

void ioloopGoDispatch(uintptr_t ctx, ioloop_event *evs, int n) {
  CHECK(ctx == DISPATCH_CTX, "ctx %#lx", (unsigned long)ctx);
  CHECK(n > 0, "empty batch dispatched (n=%d)", n);
  got.calls++;
  if (n > got.max_batch)
    got.max_batch = n;
  for (int i = 0; i < n && got.n < MAX_RECORDED; i++)
    got.evs[got.n++] = evs[i];
}

static void reset_got(void) {
  got.calls = 0;
  got.n = 0;
  got.max_batch = 0;
}

/* ---- helpers ---- */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

static void make_pipe(int p[2]) {
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
    perror("pipe2");
    exit(2);
  }
}

static void put(int fd) {
  char c = 'x';
  if (write(fd, &c, 1) != 1) {
    perror("write");
    exit(2);
  }
}

static void wake(ioloop_poller *p) {
  uint64_t one = 1;
  if (write(p->wakefd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
    perror("write(eventfd)");
    exit(2);
  }
}

/* ---- tests ---- */

static void test_open_close(void) {
  ioloop_poller *p = NULL;
  int rc = ioloop_open(&p);
  CHECK(rc == 0 && p != NULL, "ioloop_open = %d", rc);
  if (p == NULL)
    return;
  CHECK(p->epfd >= 0 && p->wakefd >= 0, "fds %d %d", p->epfd, p->wakefd);
  CHECK(p->cap == IOLOOP_INITIAL_EVENTS, "cap %d", p->cap);
  CHECK(fcntl(p->epfd, F_GETFD) & FD_CLOEXEC, "epoll fd not close-on-exec");
  CHECK(fcntl(p->wakefd, F_GETFD) & FD_CLOEXEC, "eventfd not close-on-exec");
  CHECK(fcntl(p->wakefd, F_GETFL) & O_NONBLOCK, "eventfd blocking");
  ioloop_close(p);
  ioloop_close(NULL); /* documented as safe */
}

static void test_open_failures(void) {
  ioloop_poller *p = NULL;
  struct rlimit old, low;
  int before = count_fds();

  /* Each allocation of ioloop_open in turn: calloc(poller), then the
   * event buffers (two mallocs). Every failure is -ENOMEM, leaks nothing. */
  for (int k = 0; k < 3; k++) {
    p = NULL;
    fail_in = k;
    int rc = ioloop_open(&p);
    fail_in = -1;
    CHECK(rc == -ENOMEM, "allocation %d failing: ioloop_open = %d, want -ENOMEM", k, rc);
    CHECK(p == NULL, "allocation %d failing: *out set", k);
    CHECK(count_fds() == before, "allocation %d failing: %d fds open, want %d", k, count_fds(), before);
  }

  /* Out of fds for epoll_create1, then for the eventfd: -EMFILE, and the
   * epoll fd of the second case is closed again. */
  getrlimit(RLIMIT_NOFILE, &old);
  for (int spare = 0; spare < 2; spare++) {
    int fds = count_fds();
    /* Every number below the lowest free one is taken: a limit of
     * lowest + spare leaves exactly `spare` numbers for ioloop_open. */
    int lowest = fcntl(0, F_DUPFD_CLOEXEC, 0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)(lowest + spare);
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", strerror(errno));
    p = NULL;
    int rc = ioloop_open(&p);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK(rc == -EMFILE, "%d spare fds: ioloop_open = %d, want -EMFILE", spare, rc);
    CHECK(p == NULL, "%d spare fds: *out set", spare);
    if (rc == 0)
      ioloop_close(p);
    CHECK(count_fds() == fds, "%d spare fds: %d fds open after, want %d", spare, count_fds(), fds);
  }
  CHECK(count_fds() == before, "%d fds open after open failures, want %d", count_fds(), before);
}

static void test_ctl_errors(void) {
  ioloop_poller *p;
  int pp[2], closed[2], rc;
  char path[] = "/tmp/ioloop-driver-XXXXXX";
  if (ioloop_open(&p) < 0)
    exit(2);
  make_pipe(pp);
  make_pipe(closed);
  close(closed[0]);
  close(closed[1]);

  rc = ioloop_ctl(p, EPOLL_CTL_ADD, -1, EPOLLIN, 1);
  CHECK(rc == -EBADF, "ADD fd -1 = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_ADD, closed[0], EPOLLIN, 1);
  CHECK(rc == -EBADF, "ADD closed fd = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_MOD, pp[0], EPOLLIN, 1);
  CHECK(rc == -ENOENT, "MOD unregistered = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_DEL, pp[0], 0, 0);
  CHECK(rc == -ENOENT, "DEL unregistered = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_ADD, pp[0], EPOLLIN, 1);
  CHECK(rc == 0, "ADD = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_ADD, pp[0], EPOLLIN, 2);
  CHECK(rc == -EEXIST, "second ADD = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_MOD, pp[0], EPOLLIN | EPOLLOUT, 1);
  CHECK(rc == 0, "MOD = %d", rc);
  rc = ioloop_ctl(p, 99, pp[0], EPOLLIN, 1);
  CHECK(rc == -EINVAL, "op 99 = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_ADD, p->epfd, EPOLLIN, 1);
  CHECK(rc == -EINVAL, "ADD the epoll fd to itself = %d", rc);
  int file = mkstemp(path);
  if (file < 0)
    exit(2);
  unlink(path);
  rc = ioloop_ctl(p, EPOLL_CTL_ADD, file, EPOLLIN, 1);
  CHECK(rc == -EPERM, "ADD regular file = %d", rc);
  close(file);
  rc = ioloop_ctl(p, EPOLL_CTL_DEL, pp[0], 0, 0);
  CHECK(rc == 0, "DEL = %d", rc);
  rc = ioloop_ctl(p, EPOLL_CTL_DEL, pp[0], 0, 0);
  CHECK(rc == -ENOENT, "second DEL = %d", rc);
  close(pp[0]);
  close(pp[1]);
  ioloop_close(p);
}

static void test_wait_wake_and_tags(void) {
  ioloop_poller *p;
  int a[2], b[2], rc;
  if (ioloop_open(&p) < 0)
    exit(2);
  make_pipe(a);
  make_pipe(b);
  /* A high fd number and the largest Go generation (2^31-1; the top bit marks C watches) survive the tag. */
  int high = fcntl(b[0], F_DUPFD_CLOEXEC, 900);
  CHECK(high >= 900, "F_DUPFD: %s", strerror(errno));

  rc = ioloop_wait(p, 0);
  CHECK(rc == 0, "idle wait = %d", rc);
  wake(p);
  wake(p);
  wake(p);
  rc = ioloop_wait(p, 0);
  CHECK(rc == 1, "woken wait = %d, want 1 (woken, no events)", rc);
  rc = ioloop_wait(p, 0);
  CHECK(rc == 0, "wait after one drain of three wakes = %d", rc);

  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, a[0], EPOLLIN, 7) == 0, "ADD a");
  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, high, EPOLLIN, 0x7FFFFFFFu) == 0, "ADD high");
  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, a[1], EPOLLIN, 9) == 0, "ADD a write end for IN only");
  put(a[1]);
  put(b[1]);
  wake(p);
  rc = ioloop_wait(p, 0);
  CHECK(rc == ((2 << 1) | 1), "wait = %d, want 2 events and woken", rc);
  int seen_a = 0, seen_high = 0;
  for (int i = 0; i < (rc >> 1); i++) {
    ioloop_event *e = &p->ready[i];
    if (e->fd == a[0] && e->gen == 7 && e->events == EPOLLIN)
      seen_a++;
    else if (e->fd == high && e->gen == 0x7FFFFFFFu && e->events == EPOLLIN)
      seen_high++;
    else
      CHECK(0, "unexpected event fd %d gen %u events %#x", e->fd, e->gen, e->events);
  }
  CHECK(seen_a == 1 && seen_high == 1, "tags: a %d high %d", seen_a, seen_high);

  /* poll: one dispatch for the batch; nothing dispatched when empty. */
  reset_got();
  rc = ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(rc == (2 << 1), "poll = %d", rc);
  CHECK(got.calls == 1 && got.n == 2, "poll dispatched %d calls, %d events", got.calls, got.n);
  reset_got();
  rc = ioloop_poll_each(p, 0, DISPATCH_CTX);
  CHECK(rc == (2 << 1), "poll_each = %d", rc);
  CHECK(got.calls == 2 && got.max_batch == 1, "poll_each: %d calls, batch %d", got.calls, got.max_batch);
  /* The (file, high) watch outlives the number while b[0] holds the file
   * (epoll(7) Q6); it goes when b[0] is closed below. */
  close(high);
  char buf[8];
  CHECK(read(a[0], buf, sizeof(buf)) == 1, "drain a");
  CHECK(read(b[0], buf, sizeof(buf)) == 1, "drain b");
  reset_got();
  rc = ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(rc == 0 && got.calls == 0, "poll with nothing ready = %d, %d dispatches", rc, got.calls);

  /* A failing epoll_wait is -errno, with nothing dispatched. */
  int epfd = p->epfd;
  p->epfd = -1;
  rc = ioloop_wait(p, 0);
  CHECK(rc == -EBADF, "wait on a bad epoll fd = %d", rc);
  rc = ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(rc == -EBADF && got.calls == 0, "poll on a bad epoll fd = %d", rc);
  p->epfd = epfd;

  close(a[0]);
  close(a[1]);
  close(b[0]);
  close(b[1]);
  ioloop_close(p);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void test_eintr(void) {
  ioloop_poller *p;
  struct sigaction sa, old;
  /* A repeating timer: a one-shot one could fire before the wait begins on
   * a loaded machine (or under valgrind), and the wait would never end. */
  struct itimerval it = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
  if (ioloop_open(&p) < 0)
    exit(2);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm; /* no SA_RESTART; epoll_wait is never restarted anyway */
  sigaction(SIGALRM, &sa, &old);
  setitimer(ITIMER_REAL, &it, NULL);
  /* No timeout: only the signal can end this wait. */
  int rc = ioloop_wait(p, -1);
  setitimer(ITIMER_REAL, &off, NULL);
  CHECK(rc == 0, "interrupted wait = %d, want 0 (EINTR is a wakeup with no events)", rc);
  CHECK(alarms >= 1, "%d alarms", (int)alarms);
  sigaction(SIGALRM, &old, NULL);
  ioloop_close(p);
}

/* burst registers n eventfds (all readable) and polls until each has been
 * dispatched; it returns the number of polls and leaves p->cap grown. */
static int burst(ioloop_poller *p, int n, int *fds, int *seen) {
  int polls = 0, total = 0;
  for (int i = 0; i < n; i++) {
    seen[i] = 0;
    CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, fds[i], EPOLLIN, (uint32_t)i + 1) == 0, "ADD %d", i);
  }
  while (total < n && polls < 64) {
    reset_got();
    int rc = ioloop_poll(p, 0, DISPATCH_CTX);
    polls++;
    CHECK(rc >= 0, "poll = %d", rc);
    for (int i = 0; i < got.n; i++) {
      int k = (int)got.evs[i].gen - 1;
      CHECK(k >= 0 && k < n && got.evs[i].fd == fds[k], "bad event fd %d gen %u", got.evs[i].fd,
            got.evs[i].gen);
      if (k >= 0 && k < n && !seen[k]) {
        seen[k] = 1;
        total++;
      }
    }
  }
  CHECK(total == n, "%d of %d ready fds dispatched after %d polls", total, n, polls);
  for (int i = 0; i < n; i++)
    ioloop_ctl(p, EPOLL_CTL_DEL, fds[i], 0, 0);
  return polls;
}

static void test_grow(void) {
  enum { N = 4200 };
  static int fds[N], seen[N];
  struct rlimit old, want;
  ioloop_poller *p;
  int before = count_fds();

  getrlimit(RLIMIT_NOFILE, &old);
  want = old;
  if (want.rlim_cur < N + 64) {
    want.rlim_cur = N + 64;
    if (want.rlim_max < want.rlim_cur)
      want.rlim_max = want.rlim_cur; /* needs root (CI is root) */
    CHECK(setrlimit(RLIMIT_NOFILE, &want) == 0, "setrlimit(%lu): %s (raise ulimit -n)",
          (unsigned long)want.rlim_cur, strerror(errno));
  }
  for (int i = 0; i < N; i++) {
    uint64_t one = 1;
    fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fds[i] < 0) {
      CHECK(0, "eventfd %d: %s", i, strerror(errno));
      exit(1);
    }
    if (write(fds[i], &one, sizeof(one)) != (ssize_t)sizeof(one))
      exit(2);
  }
  if (ioloop_open(&p) < 0)
    exit(2);

  /* 65..200 ready: the first poll fills 64 and the buffer doubles. */
  burst(p, 200, fds, seen);
  CHECK(p->cap == 256, "cap after 200 ready = %d, want 256", p->cap);
  CHECK(got.max_batch <= p->cap, "batch %d", got.max_batch);

  /* The ceiling: 4200 ready fds grow it to 4096 and no further. */
  int polls = burst(p, N, fds, seen);
  CHECK(p->cap == IOLOOP_MAX_EVENTS, "cap after %d ready = %d, want %d", N, p->cap, IOLOOP_MAX_EVENTS);
  CHECK(polls <= 10, "%d polls to serve %d ready fds", polls, N);
  ioloop_close(p);

  /* Growing fails (either allocation): the old buffer stays and serves. */
  for (int k = 0; k < 2; k++) {
    if (ioloop_open(&p) < 0)
      exit(2);
    for (int i = 0; i < 100; i++)
      CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, fds[i], EPOLLIN, (uint32_t)i + 1) == 0, "ADD");
    fail_in = k;
    reset_got();
    int rc = ioloop_poll(p, 0, DISPATCH_CTX);
    fail_in = -1;
    CHECK(rc == (64 << 1), "full poll = %d", rc);
    CHECK(p->cap == 64, "allocation %d failing: cap %d, want 64 kept", k, p->cap);
    for (int i = 0; i < 100; i++)
      ioloop_ctl(p, EPOLL_CTL_DEL, fds[i], 0, 0);
    burst(p, 100, fds, seen); /* still serves, and now grows */
    CHECK(p->cap == 128, "cap after recovery = %d", p->cap);
    ioloop_close(p);
  }
  for (int i = 0; i < N; i++)
    close(fds[i]);
  setrlimit(RLIMIT_NOFILE, &old);
  CHECK(count_fds() == before, "%d fds open after the bursts, want %d", count_fds(), before);
}

static void test_many_open_close(void) {
  int before = count_fds();
  for (int i = 0; i < 500; i++) {
    ioloop_poller *p;
    int pp[2];
    if (ioloop_open(&p) < 0)
      exit(2);
    make_pipe(pp);
    put(pp[1]);
    ioloop_ctl(p, EPOLL_CTL_ADD, pp[0], EPOLLIN, 1);
    wake(p);
    reset_got();
    int rc = ioloop_poll(p, 0, DISPATCH_CTX);
    if (rc != 3)
      CHECK(0, "cycle %d: poll = %d", i, rc);
    close(pp[0]);
    close(pp[1]);
    ioloop_close(p);
  }
  CHECK(count_fds() == before, "%d fds open after 500 open/close cycles, want %d", count_fds(), before);
}

#include "capi_tests.c"

int main(void) {
  int before = count_fds();
  test_open_close();
  test_open_failures();
  test_ctl_errors();
  test_wait_wake_and_tags();
  test_eintr();
  test_grow();
  test_many_open_close();
  test_capi();
  CHECK(count_fds() == before, "%d fds open at exit, want %d", count_fds(), before);
  CHECK(injected_alloc_failures == 8, "%d allocation failures injected, want 8", injected_alloc_failures);
  printf("driver: %d checks, %d failures, %d allocation failures injected\n", checks, failures,
         injected_alloc_failures);
  return failures != 0;
}
