//go:build linux && cgo

/*
 * glue.c — see glue.h. libcurl's rules, as its multi-socket documentation
 * states them, and how they are kept here:
 *
 *   - CURLMOPT_SOCKETFUNCTION tells which sockets to watch for what:
 *     api->watch on IN/OUT/INOUT (watching again replaces the events),
 *     api->unwatch on CURL_POLL_REMOVE. libcurl removes a socket before it
 *     closes it; a REMOVE for a number whose file is already gone gets
 *     -ENOENT from unwatch, which touches nothing else.
 *   - CURLMOPT_TIMERFUNCTION keeps one timer: -1 stops it, any other value
 *     (re)starts it. 0 means "as soon as possible": the loop runs a timer
 *     started with delay 0 after the current batch, never inside libcurl's
 *     callback, which must not call libcurl back.
 *   - When a watched socket is ready, curl_multi_socket_action(fd, bits);
 *     when the timer fires, curl_multi_socket_action(CURL_SOCKET_TIMEOUT).
 *     Then curl_multi_info_read collects what completed, and Go hears of
 *     all of it in one call.
 *   - No multi call from inside a libcurl callback (CURLM_RECURSIVE_API_CALL):
 *     the callbacks here only touch the loop's API and our buffers, and the
 *     Go code they call for a user's header/body callback defers anything
 *     that would call the multi handle (client.go).
 */
#include "glue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Implemented in Go (cgo.go). */
extern void iocurlGoDone(uintptr_t h);
extern int iocurlGoHeader(uintptr_t h, int32_t id, char *p, size_t n);
extern int iocurlGoBody(uintptr_t h, int32_t id, char *p, size_t n);
extern void iocurlGoRead(uintptr_t h, int32_t id);

int iocurl_reserve(iocurl_buf *b, size_t need) {
  size_t ncap;
  char *np;
  if (need <= b->cap)
    return 0;
  ncap = b->cap < 256 ? 256 : b->cap;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2)
      return -ENOMEM;
    ncap *= 2;
  }
  np = realloc(b->p, ncap);
  if (np == NULL)
    return -ENOMEM;
  b->p = np;
  b->cap = ncap;
  return 0;
}

static int buf_append(iocurl_buf *b, const char *p, size_t n) {
  if (b->len + n < b->len || iocurl_reserve(b, b->len + n) < 0)
    return -ENOMEM;
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void buf_trim(iocurl_buf *b, size_t keep) {
  if (b->cap > keep) {
    free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
  b->len = 0;
}

/* ---- the loop side: watches and the timer ---- */

static void drain(iocurl_client *cl);

static void fd_mark(iocurl_client *cl, int fd, int on) {
  if (fd >= cl->nfds) {
    int n = cl->nfds == 0 ? 64 : cl->nfds;
    uint8_t *nf;
    if (!on)
      return;
    while (n <= fd)
      n *= 2;
    nf = realloc(cl->fds, (size_t)n);
    if (nf == NULL)
      return; /* only teardown's safety net is lost: libcurl removes its sockets */
    memset(nf + cl->nfds, 0, (size_t)(n - cl->nfds));
    cl->fds = nf;
    cl->nfds = n;
  }
  if (cl->fds[fd] != (uint8_t)on) {
    cl->fds[fd] = (uint8_t)on;
    cl->watches += on ? 1 : -1;
  }
}

/* An fd libcurl watches is ready. Whatever happens in drain (Go may close
 * the client and free cl), nothing here touches cl after it. */
static void on_io(int fd, uint32_t events, void *arg) {
  iocurl_client *cl = arg;
  int bits = 0, running;
  if (events & IOLOOP_READ)
    bits |= CURL_CSELECT_IN;
  if (events & IOLOOP_WRITE)
    bits |= CURL_CSELECT_OUT;
  /* An error or hang-up alone: pass 0, "unknown", so that libcurl looks at
   * the socket itself and reports the real failure (a reset, a refused
   * connect) instead of a generic one. */
  if (curl_multi_socket_action(cl->multi, fd, bits, &running) == CURLM_RECURSIVE_API_CALL)
    cl->recursive++;
  drain(cl);
}

static void on_timer(ioloop_timer *t, void *arg) {
  iocurl_client *cl = arg;
  int running;
  (void)t;
  if (curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running) == CURLM_RECURSIVE_API_CALL)
    cl->recursive++;
  drain(cl);
}

/* CURLMOPT_SOCKETFUNCTION. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  iocurl_client *cl = userp;
  uint32_t ev = 0;
  int rc;
  (void)easy;
  (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    (void)cl->api->unwatch(cl->api->core, s); /* -ENOENT: already gone, harmless */
    fd_mark(cl, s, 0);
    return 0;
  }
  if (what & CURL_POLL_IN)
    ev |= IOLOOP_READ;
  if (what & CURL_POLL_OUT)
    ev |= IOLOOP_WRITE;
  rc = cl->api->watch(cl->api->core, s, ev, on_io, cl);
  if (rc < 0) {
    /* The socket cannot be watched (out of memory, or its number is a Go
     * handler's): libcurl would wait for it forever. -1 makes libcurl fail
     * the transfers (CURLE_ABORTED_BY_CALLBACK); Go adds this errno to
     * their error. */
    cl->watch_errno = -rc;
    return -1;
  }
  fd_mark(cl, s, 1);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
  iocurl_client *cl = userp;
  (void)multi;
  if (timeout_ms < 0) {
    if (cl->timer != NULL)
      cl->api->timer_stop(cl->timer);
    return 0;
  }
  if (cl->timer == NULL) {
    cl->timer = cl->api->timer_new(cl->api->core, on_timer, cl);
    if (cl->timer == NULL)
      return -1;
  }
  return cl->api->timer_start(cl->timer, (uint64_t)timeout_ms) < 0 ? -1 : 0;
}

/* ---- completion ---- */

static int64_t info_off(CURL *e, CURLINFO what) {
  curl_off_t v = 0;
  if (curl_easy_getinfo(e, what, &v) != CURLE_OK)
    return 0;
  return (int64_t)v;
}

static int64_t info_long(CURL *e, CURLINFO what) {
  long v = 0;
  if (curl_easy_getinfo(e, what, &v) != CURLE_OK)
    return 0;
  return (int64_t)v;
}

/* finish records what Go needs from a completed transfer and takes it out
 * of the multi handle, so that Go can reuse the easy handle at once. */
static void finish(iocurl_xfer *x, CURLcode code) {
  CURL *e = x->easy;
  iocurl_result *r = &x->res;
  char *url = NULL;
  r->code = (int32_t)code;
  r->status = info_long(e, CURLINFO_RESPONSE_CODE);
  r->http_version = (int32_t)info_long(e, CURLINFO_HTTP_VERSION);
  r->redirects = info_long(e, CURLINFO_REDIRECT_COUNT);
  if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK)
    url = NULL;
  r->effective_url = url;
  r->effective_url_len = url != NULL ? (int64_t)strlen(url) : 0;
  r->t_dns = info_off(e, CURLINFO_NAMELOOKUP_TIME_T);
  r->t_connect = info_off(e, CURLINFO_CONNECT_TIME_T);
  r->t_tls = info_off(e, CURLINFO_APPCONNECT_TIME_T);
  r->t_pretransfer = info_off(e, CURLINFO_PRETRANSFER_TIME_T);
  r->t_first = info_off(e, CURLINFO_STARTTRANSFER_TIME_T);
  r->t_total = info_off(e, CURLINFO_TOTAL_TIME_T);
  r->t_redirect = info_off(e, CURLINFO_REDIRECT_TIME_T);
  if (curl_multi_remove_handle(x->cl->multi, e) == CURLM_RECURSIVE_API_CALL)
    x->cl->recursive++;
  x->active = 0;
}

/* drain hands every completed transfer to Go in one call. It is the last
 * thing its callers do: Go may free cl (the client closed in a callback). */
static void drain(iocurl_client *cl) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(cl->multi, &left)) != NULL) {
    iocurl_xfer *x = NULL;
    CURLcode code;
    if (m->msg != CURLMSG_DONE)
      continue;
    code = m->data.result;
    if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK || x == NULL)
      continue;
    finish(x, code);
    /* done has room for every slot (iocurl_xfer_new), and a slot completes
     * at most once between two Go calls. */
    cl->done[cl->ndone++] = x->id;
  }
  if (cl->ndone > 0)
    iocurlGoDone(cl->handle);
}

/* ---- libcurl's per-transfer callbacks ---- */

/* CURLOPT_HEADERFUNCTION: keep the latest response's header block (a new
 * status line starts a new one: a redirect, 100 Continue, a proxy's CONNECT
 * reply), and pass each line to Go if asked. */
static size_t header_cb(char *p, size_t size, size_t n, void *ud) {
  iocurl_xfer *x = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    x->head.len = 0;
    x->head_done = 0;
  }
  if (!x->head_done) {
    if (buf_append(&x->head, p, len) < 0) {
      x->oom = 1;
      return 0;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n'))
      x->head_done = 1;
  }
  if ((x->flags & IOCURL_GO_HEADER) && iocurlGoHeader(x->cl->handle, x->id, p, len) != 0) {
    x->go_abort = 1;
    return 0;
  }
  return len;
}

/* CURLOPT_WRITEFUNCTION: buffer the body (sized from Content-Length when
 * it is known), or pass it to Go chunk by chunk. */
static size_t write_cb(char *p, size_t size, size_t n, void *ud) {
  iocurl_xfer *x = ud;
  size_t len = size * n;
  if (x->flags & IOCURL_GO_BODY) {
    if (iocurlGoBody(x->cl->handle, x->id, p, len) != 0) {
      x->go_abort = 1;
      return 0;
    }
    return len;
  }
  /* A body that arrives in one piece needs no size hint. */
  if (x->body.len == 0 && len >= CURL_MAX_WRITE_SIZE) {
    curl_off_t cl = -1;
    if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl > 0 &&
        (uint64_t)cl < (uint64_t)SIZE_MAX / 2 && (size_t)cl > x->body.cap && (size_t)cl >= len)
      (void)iocurl_reserve(&x->body, (size_t)cl); /* a hint: on failure, grow as it comes */
  }
  if (buf_append(&x->body, p, len) < 0) {
    x->oom = 1;
    return 0;
  }
  return len;
}

/* CURLOPT_READFUNCTION, for a request body that Go streams from an
 * io.Reader: copy what Go left in x->up; when it is used up, ask Go for
 * more (which it has if its reader goroutine was faster) and otherwise
 * pause the upload until Go has data (iocurl_unpause). */
static size_t read_cb(char *buf, size_t size, size_t n, void *ud) {
  iocurl_xfer *x = ud;
  size_t max = size * n, k;
  if (x->upoff >= x->up.len && !x->upeof && !x->uperr) {
    iocurlGoRead(x->cl->handle, x->id);
    if (x->upoff >= x->up.len && !x->upeof && !x->uperr) {
      x->paused = 1;
      return CURL_READFUNC_PAUSE;
    }
  }
  if (x->upoff >= x->up.len)
    return x->uperr ? CURL_READFUNC_ABORT : 0;
  k = x->up.len - x->upoff;
  if (k > max)
    k = max;
  memcpy(buf, x->up.p + x->upoff, k);
  x->upoff += k;
  return k;
}

/* ---- the client and its slots ---- */

iocurl_client *iocurl_client_new(void *api, uintptr_t handle) {
  iocurl_client *cl = calloc(1, sizeof(*cl));
  if (cl == NULL)
    return NULL;
  cl->api = api;
  cl->handle = handle;
  return cl;
}

int iocurl_multi(iocurl_client *cl, long maxconnects) {
  CURLM *m;
  if (cl->multi != NULL)
    return 0;
  m = curl_multi_init();
  if (m == NULL)
    return CURLM_OUT_OF_MEMORY;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, cl);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, cl);
  /* HTTP/2 multiplexing when both sides can (libcurl's default since
   * 7.62; said here so that it does not depend on the version). */
  curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  /* libcurl sizes its idle-connection cache from the easy handles in the
   * multi handle (4 each); ours leave it between requests, so a lull would
   * shrink the cache and the next burst would reconnect. */
  curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, maxconnects);
  cl->multi = m;
  return 0;
}

iocurl_xfer *iocurl_xfer_new(iocurl_client *cl, int32_t id) {
  iocurl_xfer *x;
  if (id >= cl->capdone) {
    int32_t n = cl->capdone == 0 ? 16 : cl->capdone;
    int32_t *nd;
    while (n <= id)
      n *= 2;
    nd = realloc(cl->done, (size_t)n * sizeof(*nd));
    if (nd == NULL)
      return NULL;
    cl->done = nd;
    cl->capdone = n;
  }
  x = calloc(1, sizeof(*x));
  if (x == NULL)
    return NULL;
  x->cl = cl;
  x->id = id;
  return x;
}

void iocurl_xfer_free(iocurl_xfer *x) {
  if (x == NULL)
    return;
  if (x->easy != NULL) {
    if (x->active)
      curl_multi_remove_handle(x->cl->multi, x->easy);
    curl_easy_cleanup(x->easy);
  }
  free(x->arena.p);
  free(x->hdrs);
  free(x->up.p);
  free(x->head.p);
  free(x->body.p);
  free(x->cur.url.p);
  free(x);
}

/* iocurl_client_free runs after Go has freed every slot: the multi handle
 * closes its cached connections (their sockets are unwatched through
 * sock_cb), then anything still watched is unwatched and the timer freed. */
void iocurl_client_free(iocurl_client *cl) {
  int fd;
  if (cl == NULL)
    return;
  if (cl->multi != NULL)
    curl_multi_cleanup(cl->multi);
  for (fd = 0; fd < cl->nfds; fd++) {
    if (cl->fds[fd])
      (void)cl->api->unwatch(cl->api->core, fd);
  }
  if (cl->timer != NULL)
    cl->api->timer_free(cl->timer);
  free(cl->fds);
  free(cl->done);
  free(cl);
}

/* ---- setting a request up ---- */

/* Options that are cheap to set on every request are set on every request;
 * a request that used one of the rare ones (a method other than GET, a
 * body, a proxy, TLS files or settings) leaves the handle to be reset
 * before the next, since some of them (CURLOPT_CAINFO) cannot be put back
 * to their default any other way. curl_easy_reset keeps the handle's
 * connections, which live in the multi handle's cache anyway. */
#define RARE_PROXY 0x10000u
#define RARE_CAFILE 0x20000u
#define RARE_CERT 0x40000u
#define RARE_METHOD 0x80000u
#define RARE_FLAGS (IOCURL_UPLOAD_READ | IOCURL_INSECURE | IOCURL_HEAD | IOCURL_POST | IOCURL_NOREUSE | IOCURL_GO_BODY)

static CURLcode set_constants(iocurl_xfer *x) {
  CURL *e = x->easy;
  CURLcode rc = CURLE_OK;
  curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)x);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(e, CURLOPT_READDATA, (void *)x);
  /* Go programs are multi-threaded: no signals (libcurl's own advice). */
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  /* No proxy unless the request names one: the http_proxy family of
   * environment variables is not consulted (Tornado's client does the
   * same), which also spares libcurl a getenv scan per transfer. */
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  /* HTTP only, for the first URL and for redirects (file://, dict://...
   * have no business in an HTTP client). */
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (rc == CURLE_OK)
    rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  return rc;
}

static const char *arena_str(iocurl_xfer *x, int32_t off) {
  return off < 0 ? NULL : x->arena.p + off;
}

/* build_headers links the header lines in the arena into a curl_slist made
 * of our own nodes (libcurl only reads the list), reused across requests. */
static int build_headers(iocurl_xfer *x) {
  iocurl_req *r = &x->req;
  const char *p;
  int32_t i;
  if (r->hdr_n <= 0)
    return 0;
  if (r->hdr_n > x->hdrs_cap) {
    struct curl_slist *n = realloc(x->hdrs, (size_t)r->hdr_n * sizeof(*n));
    if (n == NULL)
      return -ENOMEM;
    x->hdrs = n;
    x->hdrs_cap = r->hdr_n;
  }
  p = x->arena.p + r->hdrs;
  for (i = 0; i < r->hdr_n; i++) {
    x->hdrs[i].data = (char *)p;
    x->hdrs[i].next = i + 1 < r->hdr_n ? &x->hdrs[i + 1] : NULL;
    p += strlen(p) + 1;
  }
  return 0;
}

#define SET(opt, val)                                                                              \
  do {                                                                                             \
    CURLcode c_ = curl_easy_setopt(e, opt, val);                                                   \
    if (c_ != CURLE_OK)                                                                            \
      return c_;                                                                                   \
  } while (0)

/* set_common sets the options every request has, skipping those whose
 * value the handle has already (x->cur): a request like the previous one
 * on this handle costs no setopt, not even the URL's copy. */
static CURLcode set_common(iocurl_xfer *x) {
  iocurl_req *r = &x->req;
  CURL *e = x->easy;
  const char *url = arena_str(x, r->url);
  struct curl_slist *hdrs;
  uint32_t flags = x->flags & (IOCURL_FOLLOW | IOCURL_DECOMPRESS | IOCURL_PIPEWAIT);
  int all = !x->cur.valid;
  size_t n;

  if (build_headers(x) < 0)
    return CURLE_OUT_OF_MEMORY;
  hdrs = r->hdr_n > 0 ? x->hdrs : NULL;
  n = strlen(url) + 1;
  if (all || x->cur.url.len != n || memcmp(x->cur.url.p, url, n) != 0) {
    SET(CURLOPT_URL, url);
    if (iocurl_reserve(&x->cur.url, n) < 0)
      return CURLE_OUT_OF_MEMORY;
    memcpy(x->cur.url.p, url, n);
    x->cur.url.len = n;
  }
  /* The list's nodes are rebuilt in place for each request (libcurl reads
   * them during the transfer), so the same pointer needs no setopt. */
  if (all || hdrs != x->cur.hdrs)
    SET(CURLOPT_HTTPHEADER, hdrs);
  if (all || r->connect_ms != x->cur.connect_ms)
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_ms);
  if (all || r->timeout_ms != x->cur.timeout_ms)
    SET(CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
  if (all || r->max_redirs != x->cur.max_redirs)
    SET(CURLOPT_MAXREDIRS, (long)r->max_redirs);
  if (all || r->http_version != x->cur.http_version)
    SET(CURLOPT_HTTP_VERSION, (long)r->http_version);
  if (all || ((flags ^ x->cur.flags) & IOCURL_FOLLOW))
    SET(CURLOPT_FOLLOWLOCATION, (flags & IOCURL_FOLLOW) ? 1L : 0L);
  if (all || ((flags ^ x->cur.flags) & IOCURL_DECOMPRESS))
    SET(CURLOPT_ACCEPT_ENCODING, (flags & IOCURL_DECOMPRESS) ? "" : NULL);
  if (all || ((flags ^ x->cur.flags) & IOCURL_PIPEWAIT))
    SET(CURLOPT_PIPEWAIT, (flags & IOCURL_PIPEWAIT) ? 1L : 0L);
  x->cur.hdrs = hdrs;
  x->cur.connect_ms = r->connect_ms;
  x->cur.timeout_ms = r->timeout_ms;
  x->cur.max_redirs = r->max_redirs;
  x->cur.http_version = r->http_version;
  x->cur.flags = flags;
  x->cur.valid = 1;
  return CURLE_OK;
}

static CURLcode setup(iocurl_xfer *x) {
  iocurl_req *r = &x->req;
  CURL *e = x->easy;
  uint32_t rare = x->flags & RARE_FLAGS;
  int fresh = 0;
  CURLcode rc;

  if (r->proxy >= 0)
    rare |= RARE_PROXY;
  if (r->cafile >= 0)
    rare |= RARE_CAFILE;
  if (r->cert >= 0 || r->key >= 0)
    rare |= RARE_CERT;
  if (r->method >= 0)
    rare |= RARE_METHOD;

  if (e == NULL) {
    e = x->easy = curl_easy_init();
    if (e == NULL)
      return CURLE_OUT_OF_MEMORY;
    fresh = 1;
  } else if (x->applied != 0) {
    curl_easy_reset(e);
    fresh = 1;
  }
  if (fresh) {
    x->cur.valid = 0;
    if ((rc = set_constants(x)) != CURLE_OK)
      return rc;
  }
  x->applied = rare;

  if ((rc = set_common(x)) != CURLE_OK) {
    x->cur.valid = 0;
    return rc;
  }
  if (x->flags & IOCURL_HEAD)
    SET(CURLOPT_NOBODY, 1L);
  if (x->flags & IOCURL_POST) {
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    if (!(x->flags & IOCURL_UPLOAD_READ))
      SET(CURLOPT_POSTFIELDS, arena_str(x, r->body));
  }
  if (r->method >= 0)
    SET(CURLOPT_CUSTOMREQUEST, arena_str(x, r->method));
  if (r->proxy >= 0) {
    SET(CURLOPT_PROXY, arena_str(x, r->proxy));
    SET(CURLOPT_NOPROXY, ""); /* an explicit proxy is for every host, whatever no_proxy says */
    if (r->proxy_userpwd >= 0) {
      SET(CURLOPT_PROXYUSERPWD, arena_str(x, r->proxy_userpwd));
      SET(CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
    }
  }
  /* A streamed body arrives in fewer, larger chunks (fewer callbacks into
   * Go, fewer recv calls); only such transfers pay for the larger buffer,
   * which libcurl keeps per easy handle. */
  if (x->flags & IOCURL_GO_BODY)
    SET(CURLOPT_BUFFERSIZE, (long)IOCURL_STREAM_BUFFER);
  if (x->flags & IOCURL_NOREUSE) {
    SET(CURLOPT_FRESH_CONNECT, 1L);
    SET(CURLOPT_FORBID_REUSE, 1L);
  }
  if (x->flags & IOCURL_INSECURE) {
    SET(CURLOPT_SSL_VERIFYPEER, 0L);
    SET(CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (r->cafile >= 0)
    SET(CURLOPT_CAINFO, arena_str(x, r->cafile));
  if (r->cert >= 0)
    SET(CURLOPT_SSLCERT, arena_str(x, r->cert));
  if (r->key >= 0)
    SET(CURLOPT_SSLKEY, arena_str(x, r->key));
  return CURLE_OK;
}

int iocurl_start(iocurl_xfer *x) {
  CURLcode rc;
  CURLMcode mc;
  x->errbuf[0] = 0;
  x->head.len = 0;
  x->head_done = 0;
  x->body.len = 0;
  x->oom = 0;
  x->go_abort = 0;
  x->upoff = 0;
  x->up.len = 0;
  x->upeof = 0;
  x->uperr = 0;
  x->paused = 0;
  memset(&x->res, 0, sizeof(x->res));
  rc = setup(x);
  if (rc != CURLE_OK) {
    x->applied |= RARE_METHOD; /* whatever half got set: reset next time */
    return (int)rc;
  }
  mc = curl_multi_add_handle(x->cl->multi, x->easy);
  if (mc != CURLM_OK) {
    if (mc == CURLM_RECURSIVE_API_CALL)
      x->cl->recursive++;
    return 1000 + (int)mc;
  }
  x->active = 1;
  return 0;
}

int iocurl_abort(iocurl_xfer *x) {
  CURLMcode mc = CURLM_OK;
  if (x->active) {
    mc = curl_multi_remove_handle(x->cl->multi, x->easy);
    if (mc == CURLM_RECURSIVE_API_CALL)
      x->cl->recursive++;
    else
      x->active = 0;
  }
  return (int)mc;
}

int iocurl_unpause(iocurl_xfer *x) {
  if (!x->paused || !x->active)
    return 0;
  x->paused = 0;
  return (int)curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

void iocurl_release(iocurl_xfer *x) {
  buf_trim(&x->body, IOCURL_KEEP);
  buf_trim(&x->head, IOCURL_KEEP);
  buf_trim(&x->up, 0);
  if (x->arena.cap > IOCURL_KEEP) {
    free(x->arena.p);
    x->arena.p = NULL;
    x->arena.cap = 0;
    x->applied |= RARE_METHOD; /* the handle may point into the old arena: reset */
    x->cur.valid = 0;
  }
  x->arena.len = 0;
}

const char *iocurl_strerror(int code) { return curl_easy_strerror((CURLcode)code); }

const char *iocurl_multi_strerror(int code) { return curl_multi_strerror((CURLMcode)code); }

int iocurl_h2c_reuse_broken(void) {
  return curl_version_info(CURLVERSION_NOW)->version_num < 0x080000;
}

int iocurl_api_check(void *api) {
  ioloop_api *a = api;
  if (a == NULL || a->version < IOLOOP_API_VERSION || a->size < sizeof(ioloop_api))
    return -1;
  return (int)a->version;
}
