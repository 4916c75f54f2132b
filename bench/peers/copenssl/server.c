/*
 * server.c: the C reference of the TLS scenarios: cepoll's loop (one thread,
 * level-triggered epoll, connections indexed by fd) with OpenSSL 3 on each
 * connection, non-blocking SSL_read/SSL_write straight on the socket (no BIO
 * pair, no bufferevent), answering with peer.h's responder like every peer.
 *
 * TLS is set up the way crypto/tls behaves by default, so that the Go peers
 * and this one run the same protocol and the comparison is of the
 * implementations:
 *   - TLS 1.2 and 1.3 accepted; every client of the suite gets TLS 1.3;
 *   - TLS 1.3 suites in Go's order on AES-NI hardware, chosen by the server
 *     (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), unless the client
 *     prefers ChaCha20 (Go's rule, OpenSSL's PRIORITIZE_CHACHA). Left alone,
 *     OpenSSL follows the client, and wrk's OpenSSL asks for AES-256-GCM;
 *   - key exchange X25519 (what the suite's clients offer; crypto/tls would
 *     also take X25519MLKEM768, which OpenSSL 3.0 lacks);
 *   - one session ticket per handshake, as crypto/tls sends (OpenSSL sends
 *     two), and no server-side session cache (crypto/tls keeps none);
 *   - read-ahead: one read() takes what the socket holds, as crypto/tls does,
 *     rather than a record header and then its body.
 * Writes are queued as plaintext when the socket is full, and reading
 * pauses until they drain, as in cepoll.
 *
 * Build: cc -O2 -o copenssl server.c -lssl -lcrypto
 * Run:   copenssl -addr 127.0.0.1:8888 -mode echo|hello -tls-cert cert.pem -tls-key key.pem
 */
#include "../cshared/peer.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>

struct conn {
  SSL *ssl;
  uint32_t events;     /* what epoll watches for this fd */
  int read_wants_write; /* SSL_read (the handshake) is waiting for the socket to be writable */
  struct peer_buf in;  /* hello: an incomplete request head */
  struct peer_buf out; /* plaintext SSL_write did not take yet */
};

static struct conn *conns; /* indexed by fd */
static int nconns;
static int epfd, mode;
static SSL_CTX *ctx;
static char rbuf[65536];
static struct peer_buf scratch; /* hello: responses of one read */

static void conn_close(int fd) {
  struct conn *c = &conns[fd];
  SSL_free(c->ssl);
  c->ssl = NULL;
  peer_buf_free(&c->in);
  peer_buf_free(&c->out);
  close(fd);
}

/* update_events watches EPOLLOUT while plaintext is queued or the handshake
 * waits to write, EPOLLIN otherwise. */
static void update_events(int fd) {
  struct conn *c = &conns[fd];
  uint32_t want = (c->out.len > c->out.off || c->read_wants_write) ? EPOLLOUT : EPOLLIN;
  if (want != c->events) {
    struct epoll_event e = {.events = want, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &e);
    c->events = want;
  }
}

/* send_or_queue encrypts and writes d[0:n] now, queueing the plaintext the
 * socket does not take. Returns -1 when the connection must be closed. */
static int send_or_queue(int fd, const char *d, size_t n) {
  struct conn *c = &conns[fd];
  if (c->out.len == c->out.off) {
    while (n > 0) {
      int w = SSL_write(c->ssl, d, n > INT_MAX ? INT_MAX : (int)n);
      if (w <= 0) {
        if (SSL_get_error(c->ssl, w) == SSL_ERROR_WANT_WRITE) break;
        return -1;
      }
      d += w;
      n -= (size_t)w;
    }
    if (n == 0) return 0;
  }
  /* SSL_write must be retried with these same bytes: they are queued as
   * they are, and nothing is appended before they drain (reading pauses). */
  return peer_buf_append(&c->out, d, n) < 0 ? -1 : 0;
}

/* on_readable reads one record's worth (the handshake first, inside
 * SSL_read), answers it, and goes on while OpenSSL holds data that epoll
 * cannot see (read-ahead took more than one record). */
static int on_readable(int fd) {
  struct conn *c = &conns[fd];
  c->read_wants_write = 0;
  do {
    int n = SSL_read(c->ssl, rbuf, sizeof rbuf);
    if (n <= 0) {
      switch (SSL_get_error(c->ssl, n)) {
      case SSL_ERROR_WANT_READ:
        return 0;
      case SSL_ERROR_WANT_WRITE:
        c->read_wants_write = 1;
        return 0;
      case SSL_ERROR_ZERO_RETURN:
        SSL_shutdown(c->ssl); /* close_notify back, as crypto/tls's Close sends */
        return -1;
      default:
        return -1;
      }
    }
    int rc;
    if (mode == PEER_ECHO) {
      rc = send_or_queue(fd, rbuf, (size_t)n);
    } else {
      rc = peer_hello_input(&c->in, rbuf, (size_t)n, &scratch);
      if (rc == 0 && scratch.len) rc = send_or_queue(fd, scratch.p, scratch.len);
    }
    if (rc < 0) return -1;
    if (c->out.len > c->out.off) return 0; /* the socket is full: read again once it drains */
  } while (SSL_has_pending(c->ssl));
  return 0;
}

static int on_writable(int fd) {
  struct conn *c = &conns[fd];
  if (c->out.len == c->out.off) return on_readable(fd); /* the handshake wanted to write */
  while (c->out.off < c->out.len) {
    size_t left = c->out.len - c->out.off;
    int w = SSL_write(c->ssl, c->out.p + c->out.off, left > INT_MAX ? INT_MAX : (int)left);
    if (w <= 0) return SSL_get_error(c->ssl, w) == SSL_ERROR_WANT_WRITE ? 0 : -1;
    c->out.off += (size_t)w;
  }
  c->out.off = c->out.len = 0;
  /* Records read ahead before the socket filled up wait in OpenSSL, and
   * epoll will not report them. */
  return SSL_has_pending(c->ssl) ? on_readable(fd) : 0;
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
    struct conn *c = &conns[fd];
    memset(c, 0, sizeof *c);
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
      SSL_free(c->ssl);
      c->ssl = NULL;
      close(fd);
      continue;
    }
    SSL_set_accept_state(c->ssl);
    peer_nodelay(fd);
    c->events = EPOLLIN;
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) conn_close(fd);
  }
}

/* tls_context builds the one SSL_CTX every connection shares, or exits
 * saying what failed. */
static SSL_CTX *tls_context(const char *cert, const char *key) {
  SSL_CTX *x = SSL_CTX_new(TLS_server_method());
  if (x == NULL || SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(x, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1 ||
      SSL_CTX_set1_groups_list(x, "X25519") != 1 || SSL_CTX_set_num_tickets(x, 1) != 1 ||
      SSL_CTX_use_certificate_chain_file(x, cert) != 1 || SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(x) != 1) {
    char msg[256];
    ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
    fprintf(stderr, "copenssl: TLS setup (%s, %s): %s\n", cert, key, msg);
    exit(1);
  }
  SSL_CTX_set_options(x, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
  SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_read_ahead(x, 1);
  SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return x;
}

int main(int argc, char **argv) {
  char host[256];
  int port;
  const char *cert, *key;
  peer_args_tls(argc, argv, host, sizeof host, &port, &mode, &cert, &key);
  if (cert == NULL || key == NULL) {
    fprintf(stderr, "copenssl: -tls-cert FILE and -tls-key FILE are required\n");
    return 2;
  }
  ctx = tls_context(cert, key);
  int lfd = peer_listen(host, port);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e) < 0) {
    perror("epoll");
    return 1;
  }
  fprintf(stderr, "copenssl (%s) %s listening on %s:%d\n", OpenSSL_version(OPENSSL_VERSION),
          mode == PEER_ECHO ? "echo" : "hello", host, port);

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
      if (ev & EPOLLOUT) rc = on_writable(fd);
      else if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = on_readable(fd);
      if (rc < 0) conn_close(fd);
      else update_events(fd);
    }
  }
}
