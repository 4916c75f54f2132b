/*
 * capi_tests.c — the C API (ioloop_api.h, ioloop_capi.c) exercised from C,
 * as a C library on the loop would use it. Included by driver.c, whose
 * CHECK, helpers, Go dispatch stub and allocation fault injection it uses;
 * built and run under ASan/UBSan and valgrind with the rest.
 */

static struct {
  int calls;
  int fd[16];
  uint32_t events[16];
  void *arg[16];
} cgot;

static void reset_cgot(void) { memset(&cgot, 0, sizeof(cgot)); }

static void on_timer(ioloop_timer *t, void *arg);

static void record_io(int fd, uint32_t events, void *arg) {
  if (cgot.calls < 16) {
    cgot.fd[cgot.calls] = fd;
    cgot.events[cgot.calls] = events;
    cgot.arg[cgot.calls] = arg;
  }
  cgot.calls++;
}

static void drain(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
}

static void test_capi_table(void) {
  ioloop_poller *p;
  if (ioloop_open(&p) < 0)
    exit(2);
  ioloop_api *api = ioloop_api_table(p);
  CHECK(api->version == IOLOOP_API_VERSION && api->size == sizeof(ioloop_api), "version %u size %u",
        api->version, api->size);
  CHECK(api->core == p, "core %p, want %p", (void *)api->core, (void *)p);
  CHECK(api->watch && api->unwatch && api->timer_new && api->timer_start && api->timer_stop &&
            api->timer_free && api->now_ms,
        "a function of the table is NULL");
  ioloop_close(p);
}

/* C watches are served inside the wait, never handed to Go; Go events of
 * the same batch are, in one dispatch. */
static void test_capi_watch_is_served_in_c(void) {
  ioloop_poller *p;
  int a[2], b[2];
  if (ioloop_open(&p) < 0)
    exit(2);
  ioloop_api *api = ioloop_api_table(p);
  make_pipe(a);
  make_pipe(b);
  CHECK(api->watch(p, a[0], IOLOOP_READ, record_io, (void *)0xA) == 0, "watch a");
  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, b[0], EPOLLIN, 5) == 0, "Go ADD b");
  put(a[1]);
  put(b[1]);
  reset_got();
  reset_cgot();
  int rc = ioloop_poll(p, 1000, DISPATCH_CTX);
  CHECK(rc == (1 << 1), "poll = %d, want one Go event", rc);
  CHECK(got.calls == 1 && got.n == 1 && got.evs[0].fd == b[0], "Go got %d calls, %d events", got.calls,
        got.n);
  CHECK(cgot.calls == 1 && cgot.fd[0] == a[0] && cgot.events[0] == IOLOOP_READ && cgot.arg[0] == (void *)0xA,
        "C got %d calls (fd %d events %#x)", cgot.calls, cgot.fd[0], cgot.events[0]);

  /* Only the events asked for, plus errors: a watch for WRITE on a read
   * end with data sees nothing; closing the write end reports a hangup. */
  drain(a[0]);
  drain(b[0]);
  CHECK(api->watch(p, a[0], IOLOOP_WRITE, record_io, NULL) == 0, "re-watch a for WRITE");
  put(a[1]);
  reset_cgot();
  ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(cgot.calls == 0, "WRITE watch on a readable read end: %d calls", cgot.calls);
  close(a[1]);
  reset_cgot();
  ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(cgot.calls == 1 && (cgot.events[0] & IOLOOP_ERROR) && !(cgot.events[0] & IOLOOP_READ),
        "hangup: %d calls, events %#x", cgot.calls, cgot.events[0]);
  CHECK(api->unwatch(p, a[0]) == 0, "unwatch a");
  CHECK(api->unwatch(p, a[0]) == -ENOENT, "second unwatch");
  uint64_t ev, stale, timers;
  ioloop_counters(p, &ev, &stale, &timers);
  CHECK(ev == 2 && timers == 0, "counters: %lu events, %lu timers", (unsigned long)ev, (unsigned long)timers);
  close(a[0]);
  close(b[0]);
  close(b[1]);
  ioloop_close(p);
}

/* Inside a batch: a callback unwatches, or re-watches, another fd whose
 * event is already in the batch: the old registration's event is never
 * delivered. A callback unwatching its own fd is legal, and the other
 * fd's event still runs. */
static ioloop_api *batch_api;
static int batch_fds[2];
static int batch_victim;
static int batch_mode; /* 0: unwatch the other fd; 1: re-watch it; 2: unwatch self */
static int batch_armed; /* the next callback acts (once) */

static void batch_first(int fd, uint32_t events, void *arg) {
  record_io(fd, events, arg);
  if (!batch_armed)
    return;
  batch_armed = 0;
  int other = fd == batch_fds[0] ? batch_fds[1] : batch_fds[0];
  switch (batch_mode) {
  case 0:
    batch_victim = other;
    CHECK(batch_api->unwatch(batch_api->core, other) == 0, "unwatch inside a callback");
    break;
  case 1:
    batch_victim = other;
    CHECK(batch_api->watch(batch_api->core, other, IOLOOP_READ, record_io, (void *)0x2) == 0,
          "re-watch inside a callback");
    break;
  case 2:
    batch_victim = fd;
    CHECK(batch_api->unwatch(batch_api->core, fd) == 0, "unwatch self");
    break;
  }
}

static void test_capi_changes_inside_a_batch(void) {
  for (batch_mode = 0; batch_mode < 3; batch_mode++) {
    ioloop_poller *p;
    int a[2], b[2];
    if (ioloop_open(&p) < 0)
      exit(2);
    batch_api = ioloop_api_table(p);
    make_pipe(a);
    make_pipe(b);
    batch_fds[0] = a[0];
    batch_fds[1] = b[0];
    CHECK(batch_api->watch(p, a[0], IOLOOP_READ, batch_first, (void *)0x1) == 0, "watch a");
    CHECK(batch_api->watch(p, b[0], IOLOOP_READ, batch_first, (void *)0x1) == 0, "watch b");
    put(a[1]);
    put(b[1]);
    reset_cgot();
    batch_armed = 1;
    ioloop_poll(p, 1000, DISPATCH_CTX);
    int want_calls = batch_mode == 2 ? 2 : 1, want_stale = batch_mode == 2 ? 0 : 1;
    CHECK(cgot.calls == want_calls, "mode %d: %d callbacks ran in the batch, want %d", batch_mode, cgot.calls,
          want_calls);
    uint64_t ev, stale, timers;
    ioloop_counters(p, &ev, &stale, &timers);
    CHECK(stale == (uint64_t)want_stale, "mode %d: %lu stale events, want %d", batch_mode,
          (unsigned long)stale, want_stale);
    /* The pipes still hold their bytes (nobody read): the next poll shows
     * who is watched now, and by which callback. */
    reset_cgot();
    ioloop_poll(p, 0, DISPATCH_CTX);
    if (batch_mode == 1) {
      CHECK(cgot.calls == 2, "after re-watch: %d calls, want 2", cgot.calls);
      for (int i = 0; i < cgot.calls && i < 2; i++)
        if (cgot.fd[i] == batch_victim)
          CHECK(cgot.arg[i] == (void *)0x2, "re-watched fd reports with arg %p, want its new one", cgot.arg[i]);
    } else {
      CHECK(cgot.calls == 1 && cgot.fd[0] != batch_victim, "mode %d, after unwatch: %d calls (fd %d, victim %d)",
            batch_mode, cgot.calls, cgot.fd[0], batch_victim);
    }
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    ioloop_close(p);
  }
}

/* One fd number, one owner: C or Go. */
static void test_capi_ownership(void) {
  ioloop_poller *p;
  int a[2], b[2];
  if (ioloop_open(&p) < 0)
    exit(2);
  ioloop_api *api = ioloop_api_table(p);
  make_pipe(a);
  make_pipe(b);
  CHECK(api->watch(p, a[0], IOLOOP_READ, record_io, NULL) == 0, "C watch a");
  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, a[0], EPOLLIN, 3) == -EBUSY, "Go ADD of a C fd must be EBUSY");
  CHECK(ioloop_ctl(p, EPOLL_CTL_MOD, a[0], EPOLLIN, 3) == -ENOENT, "Go MOD of a C fd must be ENOENT");
  CHECK(ioloop_ctl(p, EPOLL_CTL_DEL, a[0], 0, 0) == -ENOENT, "Go DEL of a C fd must be ENOENT");
  put(a[1]);
  reset_cgot();
  reset_got();
  ioloop_poll(p, 1000, DISPATCH_CTX);
  CHECK(cgot.calls == 1 && got.calls == 0, "after Go's attempts the C watch still works: C %d, Go %d",
        cgot.calls, got.calls);
  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, b[0], EPOLLIN, 4) == 0, "Go ADD b");
  CHECK(api->watch(p, b[0], IOLOOP_READ, record_io, NULL) == -EEXIST, "C watch of a Go fd must be EEXIST");
  /* A C watch whose file was closed without unwatch: the number is reused
   * by a Go registration, which disowns the stale watch; unwatch is then
   * harmless and leaves Go's registration alone. */
  int num = a[0];
  close(a[0]);
  close(a[1]);
  int c[2];
  make_pipe(c);
  if (c[0] != num) { /* take the number back */
    CHECK(dup2(c[0], num) == num, "dup2");
    close(c[0]);
    c[0] = num;
  }
  CHECK(ioloop_ctl(p, EPOLL_CTL_ADD, num, EPOLLIN, 6) == 0, "Go ADD of a reused number");
  CHECK(api->unwatch(p, num) == -ENOENT, "unwatch of a disowned watch must be ENOENT");
  put(c[1]);
  reset_got();
  reset_cgot();
  ioloop_poll(p, 1000, DISPATCH_CTX);
  CHECK(got.n == 1 && got.evs[0].fd == num && got.evs[0].gen == 6 && cgot.calls == 0,
        "the new owner gets its event: Go %d (fd %d gen %u), C %d", got.n, got.evs[0].fd, got.evs[0].gen,
        cgot.calls);
  close(b[0]);
  close(b[1]);
  close(c[0]);
  close(c[1]);
  ioloop_close(p);
}

static void test_capi_errors(void) {
  ioloop_poller *p;
  int a[2];
  if (ioloop_open(&p) < 0)
    exit(2);
  ioloop_api *api = ioloop_api_table(p);
  make_pipe(a);
  /* Out of memory, first (nothing allocated yet): the directory for a new
   * fd range, its page, a new timer. fd 3000 is past the directory's first
   * size (4 pages of 256); Docker's default soft limit is 1024, so raise
   * it for this test (and put it back at the end), as test_grow does. */
  struct rlimit old_lim, lim;
  getrlimit(RLIMIT_NOFILE, &old_lim);
  lim = old_lim;
  if (lim.rlim_cur < 3100) {
    lim.rlim_cur = 3100;
    if (lim.rlim_max < lim.rlim_cur)
      lim.rlim_max = lim.rlim_cur; /* needs root */
    CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0, "setrlimit(3100): %s (raise ulimit -n)", strerror(errno));
  }
  int high = fcntl(a[0], F_DUPFD_CLOEXEC, 3000);
  CHECK(high >= 3000, "F_DUPFD: %s", strerror(errno));
  fail_in = 0; /* the directory */
  CHECK(api->watch(p, high, IOLOOP_READ, record_io, NULL) == -ENOMEM, "watch without memory for the directory");
  fail_in = 1; /* the page, after the directory */
  CHECK(api->watch(p, high, IOLOOP_READ, record_io, NULL) == -ENOMEM, "watch without memory for the page");
  fail_in = 0;
  CHECK(api->timer_new(p, on_timer, NULL) == NULL, "timer_new without memory");
  fail_in = -1;
  CHECK(api->watch(p, -1, IOLOOP_READ, record_io, NULL) == -EBADF, "negative fd");
  CHECK(api->watch(p, 1000000, IOLOOP_READ, record_io, NULL) == -EBADF, "closed fd");
  CHECK(api->watch(p, a[0], IOLOOP_READ, NULL, NULL) == -EINVAL, "NULL cb");
  CHECK(api->watch(p, a[0], 0x2000, record_io, NULL) == -EINVAL, "unknown event bits");
  char path[] = "/tmp/ioloop-capi-XXXXXX";
  int f = mkstemp(path);
  CHECK(f >= 0, "mkstemp");
  unlink(path);
  CHECK(api->watch(p, f, IOLOOP_READ, record_io, NULL) == -EPERM, "regular file");
  CHECK(api->unwatch(p, f) == -ENOENT, "unwatch after a failed watch");
  close(f);
  CHECK(api->unwatch(p, a[0]) == -ENOENT, "unwatch of an unknown fd");
  CHECK(api->timer_new(p, NULL, NULL) == NULL, "timer_new with a NULL cb");
  CHECK(api->watch(p, high, IOLOOP_READ, record_io, NULL) == 0, "watch a high fd once memory is back");
  put(a[1]);
  reset_cgot();
  ioloop_poll(p, 1000, DISPATCH_CTX);
  CHECK(cgot.calls == 1 && cgot.fd[0] == high, "high fd: %d calls, fd %d", cgot.calls, cgot.fd[0]);
  CHECK(api->unwatch(p, high) == 0, "unwatch high");
  close(high);
  setrlimit(RLIMIT_NOFILE, &old_lim);
  close(a[0]);
  close(a[1]);
  ioloop_close(p);
}

/* ---- timers ---- */

static struct {
  int runs;
  int order[16];
  ioloop_timer *restart;   /* restart this one with 0 from its callback */
  int restarts;
  ioloop_timer *to_stop;   /* stop this one from the first callback */
  ioloop_timer *free_self; /* this one frees itself */
} tgot;

static void on_timer(ioloop_timer *t, void *arg) {
  if (tgot.runs < 16)
    tgot.order[tgot.runs] = (int)(intptr_t)arg;
  tgot.runs++;
  if (t == tgot.restart && tgot.restarts++ < 3)
    CHECK(ioloop_api_table(t->core)->timer_start(t, 0) == 0, "restart from own callback");
  if (tgot.to_stop != NULL) {
    ioloop_api_table(t->core)->timer_stop(tgot.to_stop);
    tgot.to_stop = NULL;
  }
  if (t == tgot.free_self) {
    ioloop_api_table(t->core)->timer_free(t);
    tgot.free_self = NULL;
  }
}

static uint64_t ms_since(uint64_t start_ms, ioloop_api *api) { return api->now_ms(api->core) - start_ms; }

static void test_capi_timers(void) {
  ioloop_poller *p;
  if (ioloop_open(&p) < 0)
    exit(2);
  ioloop_api *api = ioloop_api_table(p);
  memset(&tgot, 0, sizeof(tgot));

  /* The wait ends by the C deadline although Go asked to wait forever. */
  ioloop_timer *t1 = api->timer_new(p, on_timer, (void *)1);
  CHECK(t1 != NULL, "timer_new");
  uint64_t start = api->now_ms(p);
  CHECK(api->timer_start(t1, 20) == 0, "timer_start");
  while (tgot.runs == 0 && ms_since(start, api) < 5000)
    ioloop_poll(p, -1, DISPATCH_CTX);
  uint64_t took = ms_since(start, api);
  CHECK(tgot.runs == 1 && took >= 20 && took < 2000, "20 ms timer ran %d times after %lu ms", tgot.runs,
        (unsigned long)took);

  /* Equal deadlines run in start order; a timer restarted with 0 from its
   * own callback runs in the next poll, not in the same one. */
  ioloop_timer *t2 = api->timer_new(p, on_timer, (void *)2);
  ioloop_timer *t3 = api->timer_new(p, on_timer, (void *)3);
  memset(&tgot, 0, sizeof(tgot));
  tgot.restart = t2;
  api->timer_start(t3, 0);
  api->timer_start(t2, 0);
  api->timer_start(t1, 0);
  ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(tgot.runs == 3 && tgot.order[0] == 3 && tgot.order[1] == 2 && tgot.order[2] == 1,
        "FIFO among equal deadlines: %d runs, order %d %d %d", tgot.runs, tgot.order[0], tgot.order[1],
        tgot.order[2]);
  for (int i = 0; i < 3; i++)
    ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(tgot.runs == 6 && tgot.restarts == 4, "restarted timer: %d runs, %d restarts (one per poll)",
        tgot.runs, tgot.restarts);

  /* Stopping a due timer from another's callback; freeing one from its
   * own; stop of a stopped timer; restart of an armed one moves it. */
  memset(&tgot, 0, sizeof(tgot));
  api->timer_start(t1, 0);
  api->timer_start(t2, 0);
  tgot.to_stop = t2;
  ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(tgot.runs == 1 && tgot.order[0] == 1, "stopped from a callback: %d runs", tgot.runs);
  CHECK(api->timer_stop(t2) == 0, "stop of a stopped timer");
  tgot.free_self = t3;
  api->timer_start(t3, 0);
  api->timer_start(t1, 100000);
  api->timer_start(t1, 0); /* moved earlier */
  ioloop_poll(p, 0, DISPATCH_CTX);
  CHECK(tgot.runs == 3, "freed itself and moved timer: %d runs", tgot.runs);
  api->timer_start(t2, 3600 * 1000); /* left armed and allocated at close */
  CHECK(ioloop__timers_clamp(p, -1) > 1000, "an hour-long timer clamps -1 to %d", ioloop__timers_clamp(p, -1));
  CHECK(ioloop__timers_clamp(p, 5) == 5, "a shorter Go timeout stays");

  /* Many timers: the heap keeps order and grows. */
  ioloop_timer *many[100];
  for (int i = 0; i < 100; i++) {
    many[i] = api->timer_new(p, on_timer, (void *)(intptr_t)(100 + i));
    api->timer_start(many[i], (uint64_t)((i * 37) % 100));
  }
  for (int i = 0; i < 50; i++)
    api->timer_stop(many[i * 2]);
  memset(&tgot, 0, sizeof(tgot));
  start = api->now_ms(p);
  while (tgot.runs < 50 && ms_since(start, api) < 5000)
    ioloop_poll(p, -1, DISPATCH_CTX);
  CHECK(tgot.runs == 50, "%d of 50 armed timers ran", tgot.runs);
  for (int i = 0; i < 100; i += 3)
    api->timer_free(many[i]);
  uint64_t ev, stale, timers;
  ioloop_counters(p, &ev, &stale, &timers);
  CHECK(timers == 1 + 6 + 3 + 50, "timer counter %lu", (unsigned long)timers);
  /* t1, t2 and two thirds of many[] are still allocated: ioloop_close
   * frees them (valgrind and LeakSanitizer check). */
  ioloop_close(p);
}

/* A timer started with delay 0 from an fd callback runs after every fd
 * callback of the batch, in the same poll: the once-per-batch hook. */
static struct {
  ioloop_api *api;
  ioloop_timer *t;
  int io_calls, io_calls_when_timer_ran, timer_runs;
} after;

static void after_batch_timer(ioloop_timer *t, void *arg) {
  (void)t;
  (void)arg;
  after.timer_runs++;
  after.io_calls_when_timer_ran = after.io_calls;
}

static void after_batch_io(int fd, uint32_t events, void *arg) {
  char buf[8];
  (void)events;
  (void)arg;
  if (read(fd, buf, sizeof buf) < 0)
    return;
  after.io_calls++;
  after.api->timer_start(after.t, 0);
}

static void test_capi_timer_after_batch(void) {
  ioloop_poller *p;
  int a[2], b[2], c[2];
  if (ioloop_open(&p) < 0)
    exit(2);
  memset(&after, 0, sizeof(after));
  after.api = ioloop_api_table(p);
  after.t = after.api->timer_new(p, after_batch_timer, NULL);
  make_pipe(a);
  make_pipe(b);
  make_pipe(c);
  CHECK(after.api->watch(p, a[0], IOLOOP_READ, after_batch_io, NULL) == 0, "watch a");
  CHECK(after.api->watch(p, b[0], IOLOOP_READ, after_batch_io, NULL) == 0, "watch b");
  CHECK(after.api->watch(p, c[0], IOLOOP_READ, after_batch_io, NULL) == 0, "watch c");
  put(a[1]);
  put(b[1]);
  put(c[1]);
  ioloop_poll_batch(p, 1000);
  CHECK(after.io_calls == 3 && after.timer_runs == 1 && after.io_calls_when_timer_ran == 3,
        "one batch of 3: %d fd callbacks, the 0-delay timer ran %d times, after %d of them", after.io_calls,
        after.timer_runs, after.io_calls_when_timer_ran);
  for (int i = 0; i < 2; i++) {
    close((i == 0 ? a : b)[0]);
    close((i == 0 ? a : b)[1]);
  }
  after.api->unwatch(p, c[0]);
  close(c[0]);
  close(c[1]);
  ioloop_close(p);
}

static void test_capi(void) {
  test_capi_timer_after_batch();
  test_capi_table();
  test_capi_watch_is_served_in_c();
  test_capi_changes_inside_a_batch();
  test_capi_ownership();
  test_capi_errors();
  test_capi_timers();
}
