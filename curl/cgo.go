//go:build linux && cgo

package curl

// This is the only Go file that mentions C. glue.c holds the C side (its
// preamble here has declarations only, because this file has //export
// functions). Everything the C side calls in Go is at the end of this file.
//
// The C code reaches the loop only through the ioloop_api table that
// IOLoop.CAPI hands out, exactly as a package in another module would; the
// header comes from this module's csrc/ (a package elsewhere would copy it
// with cmd/ioloop-capi-header).

/*
#cgo pkg-config: libcurl
#cgo CFLAGS: -I${SRCDIR}/../csrc -O2 -std=gnu11 -Wall -Wextra
#include "glue.h"
#include <stdlib.h>
*/
import "C"

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime/cgo"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ioloop-go/ioloop"
)

var globalInit struct {
	once sync.Once
	code C.CURLcode
}

// curlInit runs curl_global_init once per process (it is not thread-safe
// in every libcurl build, and must precede every other libcurl call).
func curlInit() Code {
	globalInit.once.Do(func() { globalInit.code = C.curl_global_init(C.CURL_GLOBAL_DEFAULT) })
	return Code(globalInit.code)
}

var h2cReuseBroken = sync.OnceValue(func() bool { return C.iocurl_h2c_reuse_broken() != 0 })

// String is libcurl's text for the code (curl_easy_strerror).
func (c Code) String() string { return C.GoString(C.iocurl_strerror(C.int(c))) }

func multiStrerror(mc int) string { return C.GoString(C.iocurl_multi_strerror(C.int(mc))) }

// LibcurlVersion is the version string of the libcurl the program runs
// with (curl_version: "libcurl/7.88.1 OpenSSL/3.0.17 zlib/1.2.13 ...").
func LibcurlVersion() string { return C.GoString(C.curl_version()) }

// checkAPI checks the loop's C API table against the header this package
// was built with, as any package using the table must.
func checkAPI(api unsafe.Pointer) error {
	if C.iocurl_api_check(api) < 0 {
		return fmt.Errorf("curl: the loop's C API (ioloop_api.h) is older than this package's: %w", ioloop.ErrUnsupported)
	}
	return nil
}

// core is the client's C state (iocurl_client).
type core struct{ cl *C.iocurl_client }

func newCore(api unsafe.Pointer, h cgo.Handle) (core, bool) {
	cl := C.iocurl_client_new(api, C.uintptr_t(h))
	return core{cl}, cl != nil
}

// multi makes the multi handle on first use (on the loop thread, where
// every libcurl call is made). It returns a CURLMcode.
func (k core) multi(maxIdle int) int { return int(C.iocurl_multi(k.cl, C.long(maxIdle))) }

func (k core) free() { C.iocurl_client_free(k.cl) }

// takeDone appends the ids of the slots that completed since the last call.
func (k core) takeDone(dst []int32) []int32 {
	n := int(k.cl.ndone)
	if n > 0 {
		dst = append(dst, unsafe.Slice((*int32)(unsafe.Pointer(k.cl.done)), n)...)
		k.cl.ndone = 0
	}
	return dst
}

func (k core) recursive() int64 { return int64(k.cl.recursive) }
func (k core) watches() int64   { return int64(k.cl.watches) }
func (k core) watchErrno() syscall.Errno {
	return syscall.Errno(k.cl.watch_errno)
}

// slot is one transfer slot (iocurl_xfer) with its easy handle.
type slot struct{ x *C.iocurl_xfer }

func (k core) newSlot(id int32) (slot, bool) {
	x := C.iocurl_xfer_new(k.cl, C.int32_t(id))
	return slot{x}, x != nil
}

func (s slot) free() { C.iocurl_xfer_free(s.x) }

// start hands the request filled in by fill to libcurl: 0, a CURLcode, or
// 1000 + a CURLMcode.
func (s slot) start() int { return int(C.iocurl_start(s.x)) }

// abort takes an active transfer out of the multi handle; a CURLMcode.
func (s slot) abort() int { return int(C.iocurl_abort(s.x)) }

// release trims the slot's buffers after a transfer; it crosses into C
// only when there is something to free (the steady path has nothing).
func (s slot) release() {
	x := s.x
	if x.body.cap > C.IOCURL_KEEP || x.head.cap > C.IOCURL_KEEP || x.up.cap > 0 || x.arena.cap > C.IOCURL_KEEP {
		C.iocurl_release(x)
		return
	}
	x.body.len, x.head.len, x.arena.len = 0, 0, 0
}

func (s slot) paused() bool { return s.x.paused != 0 }

// unpause resumes a transfer whose upload waits for data; a CURLcode.
func (s slot) unpause() Code { return Code(C.iocurl_unpause(s.x)) }

// setUpload gives the C read callback its next chunk of request body
// (eof: the body ends after p; fail: the reader failed after p).
func (s slot) setUpload(p []byte, eof, fail bool) bool {
	x := s.x
	if len(p) > 0 {
		if C.iocurl_reserve(&x.up, C.size_t(len(p))) < 0 {
			return false
		}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(x.up.p)), len(p)), p)
	}
	x.up.len = C.size_t(len(p))
	x.upoff = 0
	if eof {
		x.upeof = 1
	}
	if fail {
		x.uperr = 1
	}
	return true
}

// uploadEmpty reports whether the C read callback has used up its chunk.
func (s slot) uploadEmpty() bool { return s.x.upoff >= s.x.up.len }

// plan is what fill needs beyond the Request.
type plan struct {
	method    string // the method to send
	custom    bool   // method goes in CURLOPT_CUSTOMREQUEST
	head      bool
	post      bool // send a body
	timeoutMs int64
}

const (
	curlHTTPVersionNone = C.CURL_HTTP_VERSION_NONE
	curlHTTPVersion11   = C.CURL_HTTP_VERSION_1_1
	curlHTTPVersion2TLS = C.CURL_HTTP_VERSION_2TLS
	curlHTTPVersion2PK  = C.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
	curlHTTPVersion10   = C.CURL_HTTP_VERSION_1_0
	curlHTTPVersion20   = C.CURL_HTTP_VERSION_2_0
	curlHTTPVersion3    = C.CURL_HTTP_VERSION_3
)

// fill copies the request into the slot's arena (one C buffer: strings,
// header lines, body) and sets the option struct the C side sets the easy
// handle up from. It validates first and returns an error wrapping
// ErrInvalidRequest, or ENOMEM, without side effects that matter (the
// arena is rewritten by the next fill).
func (s slot) fill(r *Request, p *plan) error {
	x := s.x
	hasBody := r.Body != nil || r.BodyReader != nil

	// Pass 1: validate and size.
	need := len(r.URL) + 1
	if p.custom {
		need += len(p.method) + 1
	}
	hdrN := 0
	for k, vs := range r.Header {
		if !validToken(k) {
			return invalidf("header field name %q", k)
		}
		if len(vs) == 0 {
			need += len(k) + 2
			hdrN++
			continue
		}
		for _, v := range vs {
			if !validValue(v) {
				return invalidf("header field %s: value contains CR, LF or NUL", k)
			}
			need += len(k) + 3 + len(v)
			hdrN++
		}
	}
	addExpect := hasBody && !hasKey(r.Header, "Expect")
	addCType := p.post && !hasKey(r.Header, "Content-Type")
	if addExpect {
		need += len("Expect:") + 1
		hdrN++
	}
	if addCType {
		need += len("Content-Type:") + 1
		hdrN++
	}
	for _, v := range [...]string{r.Proxy, r.CAFile, r.ClientCert, r.ClientKey} {
		if strings.IndexByte(v, 0) >= 0 {
			return invalidf("option contains NUL")
		}
		need += len(v) + 1
	}
	if strings.IndexByte(r.URL, 0) >= 0 {
		return invalidf("URL contains NUL")
	}
	userpwd := r.ProxyUser != "" || r.ProxyPassword != ""
	if userpwd {
		need += len(r.ProxyUser) + 1 + len(r.ProxyPassword) + 1
	}
	need += len(r.Body) + 1

	if uintptr(need) > uintptr(x.arena.cap) {
		if C.iocurl_reserve(&x.arena, C.size_t(need)) < 0 {
			return syscall.ENOMEM
		}
	}
	a := arenaWriter{buf: unsafe.Slice((*byte)(unsafe.Pointer(x.arena.p)), need)}

	// Pass 2: write.
	q := &x.req
	q.url = a.str(r.URL)
	q.method, q.proxy, q.proxy_userpwd, q.cafile, q.cert, q.key = -1, -1, -1, -1, -1, -1
	if p.custom {
		q.method = a.str(p.method)
	}
	if r.Proxy != "" {
		q.proxy = a.str(r.Proxy)
		if userpwd {
			q.proxy_userpwd = a.str2(r.ProxyUser, ':', r.ProxyPassword)
		}
	}
	if r.CAFile != "" {
		q.cafile = a.str(r.CAFile)
	}
	if r.ClientCert != "" {
		q.cert = a.str(r.ClientCert)
	}
	if r.ClientKey != "" {
		q.key = a.str(r.ClientKey)
	}
	q.hdrs = C.int32_t(a.off)
	q.hdr_n = C.int32_t(hdrN)
	for k, vs := range r.Header {
		if len(vs) == 0 {
			a.str2(k, ':', "") // "Name:" removes a field libcurl would add
			continue
		}
		for _, v := range vs {
			if v == "" {
				a.str2(k, ';', "") // "Name;" sends it empty
			} else {
				a.header(k, v)
			}
		}
	}
	if addExpect {
		a.str("Expect:")
	}
	if addCType {
		a.str("Content-Type:")
	}
	q.body = C.int32_t(a.off)
	copy(a.buf[a.off:], r.Body)
	a.off += len(r.Body)
	x.arena.len = C.size_t(a.off)

	q.body_len = C.int64_t(len(r.Body))
	if r.BodyReader != nil {
		q.body_len = -1
		if r.ContentLength > 0 {
			q.body_len = C.int64_t(r.ContentLength)
		}
	}
	q.connect_ms = C.int64_t(ceilMs(r.ConnectTimeout))
	q.timeout_ms = C.int64_t(p.timeoutMs)
	q.max_redirs = 0
	var flags C.uint32_t
	if r.FollowRedirects {
		flags |= C.IOCURL_FOLLOW
		q.max_redirs = C.int32_t(r.MaxRedirects)
		if r.MaxRedirects <= 0 {
			q.max_redirs = 10
		}
	}
	switch r.HTTPVersion {
	case HTTPVersionDefault:
		q.http_version = curlHTTPVersionNone
		if hasPrefixFold(r.URL, "https://") {
			flags |= C.IOCURL_PIPEWAIT
		}
	case HTTP1:
		q.http_version = curlHTTPVersion11
	case HTTP2:
		q.http_version = curlHTTPVersion2TLS
		flags |= C.IOCURL_PIPEWAIT
	case HTTP2PriorKnowledge:
		q.http_version = curlHTTPVersion2PK
		flags |= C.IOCURL_PIPEWAIT
		if h2cReuseBroken() {
			flags = flags&^C.IOCURL_PIPEWAIT | C.IOCURL_NOREUSE
		}
	default:
		return invalidf("HTTPVersion %d", int(r.HTTPVersion))
	}
	if r.OnHeader != nil {
		flags |= C.IOCURL_GO_HEADER
	}
	if r.OnBody != nil {
		flags |= C.IOCURL_GO_BODY
	}
	if r.BodyReader != nil {
		flags |= C.IOCURL_UPLOAD_READ
	}
	if r.Decompress {
		flags |= C.IOCURL_DECOMPRESS
	}
	if r.InsecureSkipVerify {
		flags |= C.IOCURL_INSECURE
	}
	if p.head {
		flags |= C.IOCURL_HEAD
	}
	if p.post {
		flags |= C.IOCURL_POST
	}
	x.flags = flags
	return nil
}

func hasKey(h http.Header, k string) bool {
	if _, ok := h[k]; ok {
		return true
	}
	for key := range h {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// arenaWriter writes NUL-terminated strings into the arena and returns
// their offsets.
type arenaWriter struct {
	buf []byte
	off int
}

func (a *arenaWriter) str(s string) C.int32_t {
	at := a.off
	a.off += copy(a.buf[a.off:], s)
	a.buf[a.off] = 0
	a.off++
	return C.int32_t(at)
}

func (a *arenaWriter) str2(s string, sep byte, t string) C.int32_t {
	at := a.off
	a.off += copy(a.buf[a.off:], s)
	a.buf[a.off] = sep
	a.off++
	a.off += copy(a.buf[a.off:], t)
	a.buf[a.off] = 0
	a.off++
	return C.int32_t(at)
}

func (a *arenaWriter) header(k, v string) {
	a.off += copy(a.buf[a.off:], k)
	a.buf[a.off], a.buf[a.off+1] = ':', ' '
	a.off += 2
	a.off += copy(a.buf[a.off:], v)
	a.buf[a.off] = 0
	a.off++
}

// outcome is what a completed slot says, read before the slot is reused.
type outcome struct {
	code     Code
	message  string // libcurl's error buffer, when code != 0
	goAbort  bool   // a Go callback (or the body reader) asked to abort
	oom      bool   // a C buffer could not grow
	response *Response
}

// smallBody is the largest body copied into the same allocation as the
// response header (a larger one gets its own, not zeroed first).
const smallBody = 16 << 10

// read builds the outcome of a completed transfer: on success the Response
// with its header parsed and its body copied into Go memory (the one copy
// of it), otherwise libcurl's message.
func (s slot) read(r *Request, queued time.Duration) outcome {
	x := s.x
	o := outcome{code: Code(x.res.code), goAbort: x.go_abort != 0, oom: x.oom != 0}
	if o.code != CodeOK {
		o.message = C.GoString(&x.errbuf[0])
		return o
	}
	resp := &Response{Request: r, StatusCode: int(x.res.status), Redirects: int(x.res.redirects)}
	switch x.res.http_version {
	case curlHTTPVersion10:
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.0", 1, 0
	case curlHTTPVersion11:
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	case curlHTTPVersion20:
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/2.0", 2, 0
	case curlHTTPVersion3:
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/3.0", 3, 0
	}
	head := unsafe.Slice((*byte)(unsafe.Pointer(x.head.p)), int(x.head.len))
	body := unsafe.Slice((*byte)(unsafe.Pointer(x.body.p)), int(x.body.len))
	var block string
	if len(body) <= smallBody {
		// One allocation for both: the header's strings point into the
		// front of it (never written again), Body is the rest (its
		// capacity ends there, so appending to it cannot reach them).
		buf := make([]byte, len(head)+len(body))
		copy(buf, head)
		copy(buf[len(head):], body)
		if len(head) > 0 {
			block = unsafe.String(&buf[0], len(head))
		}
		if len(body) > 0 {
			resp.Body = buf[len(head):len(buf):len(buf)]
		}
	} else {
		block = string(head)
		resp.Body = bytes.Clone(body)
	}
	resp.Status, resp.Header = parseHeader(block)
	if u := x.res.effective_url; u != nil {
		eff := unsafe.String((*byte)(unsafe.Pointer(u)), int(x.res.effective_url_len))
		if eff == r.URL {
			resp.EffectiveURL = r.URL
		} else {
			resp.EffectiveURL = strings.Clone(eff)
		}
	}
	us := func(v C.int64_t) time.Duration { return time.Duration(v) * time.Microsecond }
	resp.Timings = Timings{
		Queue:     queued,
		DNS:       us(x.res.t_dns),
		Connect:   us(x.res.t_connect),
		TLS:       us(x.res.t_tls),
		Sent:      us(x.res.t_pretransfer),
		FirstByte: us(x.res.t_first),
		Total:     us(x.res.t_total),
		Redirect:  us(x.res.t_redirect),
	}
	o.response = resp
	return o
}

// ---- called from C ----

func clientOf(h C.uintptr_t) *Client { return cgo.Handle(h).Value().(*Client) }

// iocurlGoDone: transfers completed (their slot ids are in cl->done). Called
// once per curl_multi_info_read drain, after the socket action returned
// (outside libcurl, so the multi handle may be used).
//
//export iocurlGoDone
func iocurlGoDone(h C.uintptr_t) { clientOf(h).onDone() }

// iocurlGoHeader: a response header line, for Request.OnHeader. Inside
// libcurl: non-zero aborts the transfer.
//
//export iocurlGoHeader
func iocurlGoHeader(h C.uintptr_t, id C.int32_t, p *C.char, n C.size_t) C.int {
	if clientOf(h).onHeader(int32(id), unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))) {
		return 0
	}
	return 1
}

// iocurlGoBody: a chunk of response body, for Request.OnBody. Inside
// libcurl: non-zero aborts the transfer.
//
//export iocurlGoBody
func iocurlGoBody(h C.uintptr_t, id C.int32_t, p *C.char, n C.size_t) C.int {
	if clientOf(h).onBody(int32(id), unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))) {
		return 0
	}
	return 1
}

// iocurlGoRead: the C read callback used up its chunk of request body;
// Go hands over the next one if its reader goroutine has it (setUpload).
// Inside libcurl.
//
//export iocurlGoRead
func iocurlGoRead(h C.uintptr_t, id C.int32_t) { clientOf(h).onRead(int32(id)) }
