/*
 * peer.h: what the C peers (cepoll, libevent, copenssl) share, so that they
 * differ only in the event loop (and copenssl in TLS): command line,
 * listening socket, output buffers and the minimal HTTP responder.
 * Header-only on purpose: each peer is built with one `cc -O2 server.c` and
 * nothing else.
 *
 * The HTTP side answers every complete request head ("\r\n\r\n") with one
 * fixed response and handles pipelining; it does not read request bodies. It
 * is a benchmark responder, not an HTTP server.
 */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The same bytes every Go peer and examples/hello send, so that the suite's
 * body check and the bytes on the wire match across peers. */
static const char peer_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
#define PEER_RESPONSE_LEN (sizeof(peer_response) - 1)

/* A request head longer than this without its blank line closes the
 * connection, like the 431 of examples/hello (without the answer). */
#define PEER_MAX_HEAD 8192

enum { PEER_ECHO, PEER_HELLO };

struct peer_buf {
  char *p;
  size_t off, len, cap; /* live bytes are p[off:len] */
};

static int peer_buf_append(struct peer_buf *b, const char *d, size_t n) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->len + n > b->cap) {
    size_t live = b->len - b->off;
    if (b->off > 0) { /* compact before growing */
      memmove(b->p, b->p + b->off, live);
      b->off = 0;
      b->len = live;
    }
    if (b->len + n > b->cap) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + n) cap *= 2;
      char *p = realloc(b->p, cap);
      if (p == NULL) return -ENOMEM;
      b->p = p;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static void peer_buf_free(struct peer_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* peer_hello consumes the complete request heads in in[0:n], appends one
 * response per head to out and returns the number of bytes consumed, or -1
 * when an unterminated head is already over PEER_MAX_HEAD. */
static long peer_hello(const char *in, size_t n, struct peer_buf *out) {
  size_t done = 0;
  for (;;) {
    const char *end = memmem(in + done, n - done, "\r\n\r\n", 4);
    if (end == NULL) break;
    done = (size_t)(end - in) + 4;
    if (peer_buf_append(out, peer_response, PEER_RESPONSE_LEN) < 0) return -1;
  }
  if (n - done > PEER_MAX_HEAD) return -1;
  return (long)done;
}

/* peer_hello_input serves n freshly read bytes of one connection: it joins
 * them to the connection's unparsed tail in *pending (copying only when a
 * head was split across reads), appends the responses to out (which it
 * empties first) and keeps the new tail. Returns 0, or -1 to close. */
static int peer_hello_input(struct peer_buf *pending, const char *rbuf, size_t n, struct peer_buf *out) {
  const char *in = rbuf;
  size_t len = n;
  if (pending->len > pending->off) { /* a head split across reads */
    if (peer_buf_append(pending, rbuf, len) < 0) return -1;
    in = pending->p + pending->off;
    len = pending->len - pending->off;
  }
  out->off = out->len = 0;
  long used = peer_hello(in, len, out);
  if (used < 0) return -1;
  if (in == rbuf) {
    if ((size_t)used < len && peer_buf_append(pending, rbuf + used, len - (size_t)used) < 0) return -1;
  } else {
    pending->off += (size_t)used;
  }
  return 0;
}

static void peer_usage(const char *prog) {
  fprintf(stderr, "usage: %s [-addr host:port] [-mode echo|hello] [-tls-cert FILE -tls-key FILE (TLS peers)]\n", prog);
  exit(2);
}

/* peer_args_tls parses the command line shared by every peer of the suite.
 * The TLS peers pass cert and key, which get -tls-cert and -tls-key (NULL
 * when absent); the others pass NULL and reject those flags. */
static void peer_args_tls(int argc, char **argv, char *host, size_t hostlen, int *port, int *mode, const char **cert,
                          const char **key) {
  const char *addr = "127.0.0.1:8888";
  *mode = PEER_ECHO;
  if (cert != NULL) *cert = NULL;
  if (key != NULL) *key = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] == '-' && a[1] == '-') a++;
    if (strcmp(a, "-addr") == 0 && i + 1 < argc) {
      addr = argv[++i];
    } else if (strcmp(a, "-mode") == 0 && i + 1 < argc) {
      const char *m = argv[++i];
      if (strcmp(m, "echo") == 0) *mode = PEER_ECHO;
      else if (strcmp(m, "hello") == 0) *mode = PEER_HELLO;
      else peer_usage(argv[0]);
    } else if (cert != NULL && strcmp(a, "-tls-cert") == 0 && i + 1 < argc) {
      *cert = argv[++i];
    } else if (key != NULL && strcmp(a, "-tls-key") == 0 && i + 1 < argc) {
      *key = argv[++i];
    } else {
      peer_usage(argv[0]);
    }
  }
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || (size_t)(colon - addr) >= hostlen) peer_usage(argv[0]);
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  *port = atoi(colon + 1);
}

/* peer_args parses the command line of a plaintext peer (inline: the TLS peer
 * does not call it, and -Wall would say so). */
static inline void peer_args(int argc, char **argv, char *host, size_t hostlen, int *port, int *mode) {
  peer_args_tls(argc, argv, host, hostlen, port, mode, NULL, NULL);
}

/* peer_listen returns a non-blocking, close-on-exec listening socket or exits:
 * a peer that cannot listen has nothing to do, and the suite reports its
 * stderr. */
static int peer_listen(const char *host, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "bad IPv4 address %s\n", host);
    exit(2);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
    perror("listen");
    exit(1);
  }
  /* A client that resets mid-write must not kill the server. */
  signal(SIGPIPE, SIG_IGN);
  return fd;
}

/* The benchmark clients ping-pong small messages: Nagle would delay them. */
static void peer_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

#endif
