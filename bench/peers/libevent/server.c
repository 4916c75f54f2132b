/*
 * server.c: the libevent 2.1 peer, written the way the issue asks: raw
 * event_new(EV_READ|EV_PERSIST) per connection and plain read()/write(), no
 * bufferevents, so it measures libevent's dispatch and nothing else. Same
 * behaviour as cepoll/server.c (one read per event, queue what the socket does
 * not take, pause reading until it drains).
 * Build: cc -O2 -o libevent server.c -levent. Run: libevent -addr 127.0.0.1:8888 -mode echo|hello
 */
#include "../cshared/peer.h"

#include <event2/event.h>

struct conn {
  int fd;
  struct event *rev, *wev;
  struct peer_buf in;  /* hello: an incomplete request head */
  struct peer_buf out; /* bytes the socket did not take yet */
};

static struct event_base *base;
static int mode;
static char rbuf[65536];
static struct peer_buf scratch; /* hello: responses of one read */

static void conn_close(struct conn *c) {
  event_free(c->rev);
  event_free(c->wev);
  peer_buf_free(&c->in);
  peer_buf_free(&c->out);
  close(c->fd);
  free(c);
}

static int send_or_queue(struct conn *c, const char *d, size_t n) {
  if (c->out.len == c->out.off) {
    ssize_t w = write(c->fd, d, n);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) return -1;
      w = 0;
    }
    d += w;
    n -= (size_t)w;
    if (n == 0) return 0;
    event_del(c->rev);
    event_add(c->wev, NULL);
  }
  return peer_buf_append(&c->out, d, n) < 0 ? -1 : 0;
}

static int handle_read(struct conn *c) {
  ssize_t n = read(c->fd, rbuf, sizeof rbuf);
  if (n == 0) return -1;
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  if (mode == PEER_ECHO) return send_or_queue(c, rbuf, (size_t)n);

  if (peer_hello_input(&c->in, rbuf, (size_t)n, &scratch) < 0) return -1;
  return scratch.len ? send_or_queue(c, scratch.p, scratch.len) : 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct conn *c = arg;
  if (handle_read(c) < 0) conn_close(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  struct conn *c = arg;
  ssize_t w = write(fd, c->out.p + c->out.off, c->out.len - c->out.off);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) conn_close(c);
    return;
  }
  c->out.off += (size_t)w;
  if (c->out.off == c->out.len) {
    c->out.off = c->out.len = 0;
    event_del(c->wev);
    event_add(c->rev, NULL);
  }
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
  (void)what;
  (void)arg;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    peer_nodelay(fd);
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) < 0) conn_close(c);
  }
}

int main(int argc, char **argv) {
  char host[256];
  int port;
  peer_args(argc, argv, host, sizeof host, &port, &mode);
  int lfd = peer_listen(host, port);
  base = event_base_new();
  if (base == NULL) {
    fprintf(stderr, "event_base_new failed\n");
    return 1;
  }
  struct event *lev = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept, NULL);
  if (lev == NULL || event_add(lev, NULL) < 0) {
    fprintf(stderr, "event_add(listener) failed\n");
    return 1;
  }
  fprintf(stderr, "libevent %s (%s) %s listening on %s:%d\n", event_get_version(),
          event_base_get_method(base), mode == PEER_ECHO ? "echo" : "hello", host, port);
  return event_base_dispatch(base) < 0 ? 1 : 0;
}
