/*
 * glue.h — libcurl's multi-socket interface on an ioloop loop, through the
 * loop's C API (csrc/ioloop_api.h) and nothing else of the core.
 *
 * The per-event path stays in C: the core calls iocurl__io (a C watch
 * callback) for a socket libcurl asked to watch, which calls
 * curl_multi_socket_action and then curl_multi_info_read; only when
 * transfers completed does it cross into Go, once for all of them
 * (iocurlGoDone). libcurl's socket callback maps to api->watch/unwatch,
 * its timer callback to one ioloop_timer.
 *
 * Memory: everything here is C memory, owned by the Go Client (client.go)
 * that created it; C never holds a Go pointer. A transfer slot
 * (iocurl_xfer) is found from Go by its index, and Go is found from C by a
 * cgo.Handle number (iocurl_client.handle).
 *
 * Threads: every function runs on the loop's thread (or, for
 * iocurl_client_free, on the goroutine that releases a stopped loop).
 */
#ifndef IOCURL_GLUE_H
#define IOCURL_GLUE_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "ioloop_api.h"

typedef struct iocurl_buf {
  char *p;
  size_t len, cap;
} iocurl_buf;

/* Request flags (iocurl_xfer.flags), set by Go before iocurl_start. */
#define IOCURL_GO_HEADER 0x01u   /* call Go for each response header line */
#define IOCURL_GO_BODY 0x02u     /* call Go with each body chunk; do not buffer */
#define IOCURL_UPLOAD_READ 0x04u /* the request body comes from Go chunk by chunk */
#define IOCURL_FOLLOW 0x08u      /* follow redirects, up to max_redirs */
#define IOCURL_DECOMPRESS 0x10u  /* Accept-Encoding: every encoding libcurl decodes */
#define IOCURL_INSECURE 0x20u    /* do not verify the server's certificate */
#define IOCURL_HEAD 0x40u        /* no response body (HEAD) */
#define IOCURL_POST 0x80u        /* send a body (method set by custom_method) */
#define IOCURL_PIPEWAIT 0x100u   /* wait for a connection that may multiplex */
#define IOCURL_NOREUSE 0x200u    /* a connection of its own, closed after it */

/* Buffers larger than this are freed when a transfer ends rather than kept
 * for the next one: a slot that once received 16 MiB must not hold it. */
#define IOCURL_KEEP (256u * 1024u)

/* libcurl's receive buffer for transfers with a Go body callback. */
#define IOCURL_STREAM_BUFFER (256 * 1024)

/* The request options Go fills in, as offsets into the arena (-1: unset).
 * Strings are NUL-terminated; headers are hdr_n consecutive strings. */
typedef struct iocurl_req {
  int32_t url, method, proxy, proxy_userpwd, cafile, cert, key, hdrs, body;
  int32_t hdr_n;
  int64_t body_len;      /* bytes at body; -1 with IOCURL_UPLOAD_READ and no size */
  int64_t connect_ms;    /* 0: libcurl's default */
  int64_t timeout_ms;    /* 0: none */
  int32_t max_redirs;
  int32_t http_version;  /* CURL_HTTP_VERSION_* */
} iocurl_req;

/* What a completed transfer left for Go, read from the slot by Go. */
typedef struct iocurl_result {
  int32_t code;          /* CURLcode */
  int32_t http_version;  /* CURLINFO_HTTP_VERSION */
  int64_t status;        /* CURLINFO_RESPONSE_CODE */
  int64_t redirects;     /* CURLINFO_REDIRECT_COUNT */
  const char *effective_url; /* libcurl's, valid until the slot is reused */
  int64_t effective_url_len;
  /* CURLINFO_*_TIME_T, microseconds from the start of the transfer. */
  int64_t t_dns, t_connect, t_tls, t_pretransfer, t_first, t_total, t_redirect;
} iocurl_result;

typedef struct iocurl_client iocurl_client;

typedef struct iocurl_xfer {
  iocurl_client *cl;
  CURL *easy;            /* created on first use, kept across requests */
  int32_t id;            /* index in the client's slots, Go's key */
  uint32_t flags;        /* IOCURL_* of the current request */
  uint32_t applied;      /* IOCURL_* flags and rare options the handle was last set up with */
  int32_t active;        /* in the multi handle */

  iocurl_buf arena;      /* the request's strings and body, filled by Go */
  iocurl_req req;
  struct curl_slist *hdrs; /* nodes pointing into the arena, built per request */
  int32_t hdrs_cap;

  /* Streamed request body: Go refills up/uplen (upoff consumed). */
  iocurl_buf up;
  size_t upoff;
  int32_t upeof, uperr, paused;

  /* The response: the raw header block of the latest response (reset at
   * each status line: redirects, 100 Continue, proxy CONNECT), and the body
   * unless IOCURL_GO_BODY. */
  iocurl_buf head;
  int32_t head_done;     /* the blank line after the latest header block was seen */
  iocurl_buf body;
  int32_t oom;           /* a buffer could not grow: the transfer was aborted */
  int32_t go_abort;      /* a Go callback asked to abort */

  /* The common options the easy handle has now (valid: since its last
   * reset), so that a request like the previous one sets nothing again. */
  struct {
    int32_t valid;
    iocurl_buf url;
    struct curl_slist *hdrs;
    int64_t connect_ms, timeout_ms;
    int32_t max_redirs, http_version;
    uint32_t flags;
  } cur;

  iocurl_result res;
  char errbuf[CURL_ERROR_SIZE];
} iocurl_xfer;

struct iocurl_client {
  ioloop_api *api;
  CURLM *multi;
  ioloop_timer *timer;   /* libcurl's one timer; created on first use */
  uintptr_t handle;      /* cgo.Handle of the Go client */
  int32_t watch_errno;   /* last api->watch failure (positive errno), for error messages */
  int64_t recursive;     /* CURLM_RECURSIVE_API_CALL seen (a bug: tests assert 0) */
  int64_t watches;       /* fds watched now */

  /* Completed slots, handed to Go by iocurlGoDone. */
  int32_t *done;
  int32_t ndone, capdone;

  /* fds watched for libcurl, so that teardown can unwatch any that
   * libcurl did not remove (fd-indexed; 1 = watched). */
  uint8_t *fds;
  int32_t nfds;
};

iocurl_client *iocurl_client_new(void *api, uintptr_t handle);
/* iocurl_multi makes the multi handle on first use, keeping up to
 * maxconnects idle connections; 0 or a CURLMcode. */
int iocurl_multi(iocurl_client *cl, long maxconnects);
void iocurl_client_free(iocurl_client *cl);

iocurl_xfer *iocurl_xfer_new(iocurl_client *cl, int32_t id);
void iocurl_xfer_free(iocurl_xfer *x);
/* iocurl_reserve makes b hold at least need bytes; 0 or -ENOMEM. */
int iocurl_reserve(iocurl_buf *b, size_t need);
/* iocurl_start sets the easy handle up from x->req and adds it to the
 * multi; 0, or a CURLcode (< 1000) or 1000 + a CURLMcode. */
int iocurl_start(iocurl_xfer *x);
/* iocurl_abort removes an active transfer from the multi (cancelled); 0 or
 * a CURLMcode. */
int iocurl_abort(iocurl_xfer *x);
/* iocurl_release drops what a finished transfer keeps that is too large
 * to keep for the next one. Go calls it only when iocurl_needs_release
 * says so (it reads the same fields without a cgo call). */
void iocurl_release(iocurl_xfer *x);
/* iocurl_unpause resumes a transfer whose upload was paused for data. */
int iocurl_unpause(iocurl_xfer *x);

/* iocurl_h2c_reuse_broken: libcurl before 8.0 fails a transfer that
 * reuses an HTTP/2 prior-knowledge connection ("Error in the HTTP2 framing
 * layer", curl/curl#10634, fixed in 8.0.0 by curl/curl#10643). */
int iocurl_h2c_reuse_broken(void);

/* iocurl_api_check: the table's version, or -1 if it is older or smaller
 * than the header this package was built with. */
int iocurl_api_check(void *api);

const char *iocurl_strerror(int code);
const char *iocurl_multi_strerror(int code);

#endif
