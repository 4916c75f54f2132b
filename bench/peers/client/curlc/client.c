/*
 * client.c: libcurl's multi-socket interface on a plain C epoll + timerfd
 * loop, the physical limit of the HTTP-client scenarios: the same libcurl
 * the curl package drives, with nothing around it. Each of -c slots keeps
 * one easy handle, set up once and added again as soon as its transfer
 * completes (no setopt per request), and the body goes into a per-slot
 * buffer (-body keep) or nowhere (-body discard). libcurl is set up as the
 * curl package sets it up: no proxy (CURLOPT_PROXY "", so no environment
 * lookups per transfer), and with -body discard, which stands for a
 * streaming body callback, a 256 KiB receive buffer (CURLOPT_BUFFERSIZE).
 *
 * Build: cc -O2 -o curlc client.c $(pkg-config --cflags --libs libcurl)
 * Run:   curlc -url URL -c 100 [-warmup-ms 500] (-duration-ms 1000 | -n 100000) [-body keep|discard]
 *
 * It prints one line, the measured window only (after the warm-up):
 *   requests=N errors=E cpu_us=C wall_us=W rss_kb_start=R0 rss_kb_end=R1 fds_start=F0 fds_end=F1
 * cpu_us is this process's user + system time (getrusage).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct slot {
  CURL *easy;
  char *buf;
  size_t len, cap;
};

static int epfd, tfd, keep_body = 1;
static CURLM *multi;
static long done_reqs, errors;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long rss_kb(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* CURLMOPT_SOCKETFUNCTION: mirror libcurl's wishes into the epoll set. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  struct epoll_event ev = {0};
  (void)e;
  (void)userp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL); /* ENOENT/EBADF: already gone */
    curl_multi_assign(multi, s, NULL);
    return 0;
  }
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
  ev.data.fd = s;
  if (socketp != NULL) {
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) == 0) return 0;
    if (errno != ENOENT) return -1; /* ENOENT: the fd number was reused: add it */
  }
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev) < 0 && errno != EEXIST) return -1;
  curl_multi_assign(multi, s, (void *)1);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timerfd; -1 disarms, 0 fires at once. */
static int on_timer(CURLM *m, long ms, void *userp) {
  struct itimerspec its = {0};
  (void)m;
  (void)userp;
  if (ms > 0) {
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1000000;
  } else if (ms == 0) {
    its.it_value.tv_nsec = 1; /* all zero would disarm */
  }
  timerfd_settime(tfd, 0, &its, NULL);
  return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  struct slot *s = ud;
  size_t len = size * n;
  if (!keep_body) return len;
  if (s->len + len > s->cap) {
    size_t c = s->cap ? s->cap : 4096;
    while (c < s->len + len) c *= 2;
    char *nb = realloc(s->buf, c);
    if (nb == NULL) return 0;
    s->buf = nb;
    s->cap = c;
  }
  memcpy(s->buf + s->len, p, len);
  s->len += len;
  return len;
}

/* completed collects finished transfers and starts each slot's next one. */
static void completed(long limit) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(multi, &left)) != NULL) {
    struct slot *s;
    long status = 0;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    if (m->data.result != CURLE_OK || status != 200) errors++;
    done_reqs++;
    curl_multi_remove_handle(multi, s->easy);
    s->len = 0;
    if (limit < 0 || done_reqs < limit) curl_multi_add_handle(multi, s->easy);
  }
}

int main(int argc, char **argv) {
  const char *url = NULL;
  long conc = 100, warmup_ms = 500, duration_ms = 1000, total = -1;
  int i, running;
  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-url")) url = argv[i + 1];
    else if (!strcmp(argv[i], "-c")) conc = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "-warmup-ms")) warmup_ms = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "-duration-ms")) duration_ms = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "-n")) total = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "-body")) keep_body = strcmp(argv[i + 1], "discard") != 0;
    else break;
  }
  if (url == NULL || conc < 1 || i < argc) {
    fprintf(stderr, "usage: %s -url URL [-c N] [-warmup-ms MS] [-duration-ms MS | -n TOTAL] [-body keep|discard]\n",
            argv[0]);
    return 2;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  multi = curl_multi_init();
  if (epfd < 0 || tfd < 0 || multi == NULL) {
    perror("curlc: setup");
    return 1;
  }
  struct epoll_event tev = {.events = EPOLLIN, .data.fd = tfd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc);

  struct slot *slots = calloc((size_t)conc, sizeof(*slots));
  for (i = 0; i < conc; i++) {
    CURL *e = curl_easy_init();
    slots[i].easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)&slots[i]);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&slots[i]);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (!keep_body) curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_multi_add_handle(multi, e);
  }

  /* Warm up, then measure: by time (-duration-ms) or by count (-n). */
  int measuring = 0;
  long limit = -1, base_reqs = 0, base_errs = 0, rss0 = 0;
  int fds0 = 0;
  uint64_t t0 = now_us(), c0 = 0, end = t0 + (uint64_t)warmup_ms * 1000u;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_us();
    if (now >= end || (measuring && limit >= 0 && done_reqs >= limit)) {
      if (measuring) break;
      measuring = 1;
      base_reqs = done_reqs;
      base_errs = errors;
      c0 = cpu_us();
      t0 = now_us();
      rss0 = rss_kb();
      fds0 = open_fds();
      if (total > 0) {
        limit = done_reqs + total;
        end = UINT64_MAX;
      } else {
        end = t0 + (uint64_t)duration_ms * 1000u;
      }
      continue;
    }
    int wait = end == UINT64_MAX ? 1000 : (int)((end - now + 999) / 1000);
    int n = epoll_wait(epfd, evs, 256, wait);
    if (n < 0 && errno != EINTR) {
      perror("curlc: epoll_wait");
      return 1;
    }
    for (i = 0; i < n; i++) {
      if (evs[i].data.fd == tfd) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0 && errno == EAGAIN) continue;
        curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
      } else {
        int bits = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                   ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0);
        curl_multi_socket_action(multi, evs[i].data.fd, bits, &running);
      }
      completed(limit);
    }
  }
  uint64_t cpu = cpu_us() - c0, wall = now_us() - t0;
  printf("requests=%ld errors=%ld cpu_us=%llu wall_us=%llu rss_kb_start=%ld rss_kb_end=%ld fds_start=%d fds_end=%d\n",
         done_reqs - base_reqs, errors - base_errs, (unsigned long long)cpu, (unsigned long long)wall, rss0,
         rss_kb(), fds0, open_fds());
  fflush(stdout);
  return 0;
}
