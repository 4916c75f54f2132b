/*
 * server.c: the plain C epoll peer, the near-physical reference of the suite.
 * One thread, level-triggered epoll, one read() per readiness event and the
 * answer written at once; bytes the socket does not take wait for EPOLLOUT
 * (and reading pauses meanwhile, so a slow client cannot grow the buffer).
 * Build: cc -O2 -o cepoll server.c. Run: cepoll -addr 127.0.0.1:8888 -mode echo|hello
 */
#include "../cshared/peer.h"

#include <sys/epoll.h>

struct conn {
  struct peer_buf in;  /* hello: an incomplete request head */
  struct peer_buf out; /* bytes the socket did not take yet */
};

static struct conn *conns; /* indexed by fd, like libuv's watchers[] */
static int nconns;
static int epfd, mode;
static char rbuf[65536];
static struct peer_buf scratch; /* hello: responses of one read */

static void conn_close(int fd) {
  peer_buf_free(&conns[fd].in);
  peer_buf_free(&conns[fd].out);
  close(fd); /* close removes fd from the epoll set */
}

static void set_events(int fd, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
}

/* send_or_queue writes d[0:n] now, queueing what the socket does not take.
 * Returns -1 when the connection must be closed. */
static int send_or_queue(int fd, const char *d, size_t n) {
  struct conn *c = &conns[fd];
  if (c->out.len == c->out.off) {
    ssize_t w = write(fd, d, n);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) return -1;
      w = 0;
    }
    d += w;
    n -= (size_t)w;
    if (n == 0) return 0;
    set_events(fd, EPOLLOUT);
  }
  return peer_buf_append(&c->out, d, n) < 0 ? -1 : 0;
}

static int on_read(int fd) {
  ssize_t n = read(fd, rbuf, sizeof rbuf);
  if (n == 0) return -1;
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  if (mode == PEER_ECHO) return send_or_queue(fd, rbuf, (size_t)n);

  struct conn *c = &conns[fd];
  if (peer_hello_input(&c->in, rbuf, (size_t)n, &scratch) < 0) return -1;
  return scratch.len ? send_or_queue(fd, scratch.p, scratch.len) : 0;
}

static int on_write(int fd) {
  struct conn *c = &conns[fd];
  ssize_t w = write(fd, c->out.p + c->out.off, c->out.len - c->out.off);
  if (w < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  c->out.off += (size_t)w;
  if (c->out.off == c->out.len) {
    c->out.off = c->out.len = 0;
    set_events(fd, EPOLLIN);
  }
  return 0;
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or EMFILE: try again on the next event */
    if (fd >= nconns) {
      int n = nconns ? nconns : 1024;
      while (n <= fd) n *= 2;
      struct conn *p = realloc(conns, (size_t)n * sizeof *p);
      if (p == NULL) {
        close(fd);
        continue;
      }
      memset(p + nconns, 0, (size_t)(n - nconns) * sizeof *p);
      conns = p;
      nconns = n;
    }
    peer_nodelay(fd);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) close(fd);
  }
}

int main(int argc, char **argv) {
  char host[256];
  int port;
  peer_args(argc, argv, host, sizeof host, &port, &mode);
  int lfd = peer_listen(host, port);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e) < 0) {
    perror("epoll");
    return 1;
  }
  fprintf(stderr, "cepoll %s listening on %s:%d\n", mode == PEER_ECHO ? "echo" : "hello", host, port);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        on_accept(lfd);
        continue;
      }
      uint32_t ev = evs[i].events;
      int rc = 0;
      if (ev & EPOLLOUT) rc = on_write(fd);
      else if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = on_read(fd);
      if (rc < 0) conn_close(fd);
    }
  }
}
