/*
 * server.c: the large-body server of the HTTP-client scenarios. C, one
 * thread, level-triggered epoll: every complete request head on a
 * keep-alive connection gets "200 OK" with a -size byte body, written from
 * one static buffer as fast as the socket takes it (EPOLLOUT when it does
 * not), so that the client under test, not this server, is what costs.
 *
 * Build: cc -O2 -o bodyserver server.c. Run: bodyserver -addr 127.0.0.1:8888 -size 16777216
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

struct conn {
  int open;
  long long left; /* body bytes still to send for the current response */
  int head_left;  /* header bytes still to send */
  int queued;     /* complete request heads waiting for their response */
  int match;      /* bytes of "\r\n\r\n" matched so far */
};

static struct conn *conns;
static int nconns, epfd;
static long long size = 16 << 20;
static char head[128], body[CHUNK];
static int head_len;

static void set_events(int fd, uint32_t ev) {
  struct epoll_event e = {.events = ev, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
}

static void conn_close(int fd) {
  conns[fd].open = 0;
  close(fd);
}

/* pump writes what the socket takes; 1: all sent, 0: would block, -1: error. */
static int pump(int fd) {
  struct conn *c = &conns[fd];
  for (;;) {
    if (c->head_left == 0 && c->left == 0) {
      if (c->queued == 0) return 1;
      c->queued--;
      c->head_left = head_len;
      c->left = size;
    }
    ssize_t w;
    if (c->head_left > 0) {
      w = write(fd, head + head_len - c->head_left, (size_t)c->head_left);
      if (w > 0) c->head_left -= (int)w;
    } else {
      size_t n = c->left < CHUNK ? (size_t)c->left : CHUNK;
      w = write(fd, body, n);
      if (w > 0) c->left -= w;
    }
    if (w < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  }
}

/* on_read counts the complete request heads (ends of "\r\n\r\n"). */
static int on_read(int fd) {
  static const char end[] = "\r\n\r\n";
  char buf[16384];
  struct conn *c = &conns[fd];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n == 0) return -1;
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
  for (ssize_t i = 0; i < n; i++) {
    if (buf[i] == end[c->match]) {
      if (++c->match == 4) {
        c->queued++;
        c->match = 0;
      }
    } else {
      c->match = buf[i] == '\r' ? 1 : 0;
    }
  }
  int rc = pump(fd);
  if (rc == 0) set_events(fd, EPOLLIN | EPOLLOUT);
  return rc < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  const char *addr = "127.0.0.1:8888";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-addr")) addr = argv[i + 1];
    else if (!strcmp(argv[i], "-size")) size = atoll(argv[i + 1]);
    else {
      fprintf(stderr, "usage: %s [-addr host:port] [-size bytes]\n", argv[0]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  memset(body, 'x', sizeof body);
  head_len = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %lld\r\n\r\n", size);

  char host[64];
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon - addr >= (long)sizeof host) {
    fprintf(stderr, "bodyserver: bad -addr %s\n", addr);
    return 2;
  }
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "bodyserver: bad host %s\n", host);
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
    perror("bodyserver: bind/listen");
    return 1;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
  fprintf(stderr, "bodyserver listening on %s, %lld-byte bodies\n", addr, size);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          if (c >= nconns) {
            int nn = nconns ? nconns : 1024;
            while (nn <= c) nn *= 2;
            conns = realloc(conns, (size_t)nn * sizeof *conns);
            memset(conns + nconns, 0, (size_t)(nn - nconns) * sizeof *conns);
            nconns = nn;
          }
          memset(&conns[c], 0, sizeof conns[c]);
          conns[c].open = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, c, &ev);
        }
        continue;
      }
      if (fd >= nconns || !conns[fd].open) continue;
      int rc = 0;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) rc = -1;
      if (rc == 0 && (evs[i].events & EPOLLOUT)) {
        rc = pump(fd);
        if (rc == 1) set_events(fd, EPOLLIN);
        rc = rc < 0 ? -1 : 0;
      }
      if (rc == 0 && (evs[i].events & EPOLLIN)) rc = on_read(fd);
      if (rc < 0) conn_close(fd);
    }
  }
}
