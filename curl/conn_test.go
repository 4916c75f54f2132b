//go:build linux && cgo

package curl

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// N sequential requests reuse one keep-alive connection, whether made
// with Fetch on the loop or Do from another goroutine.
func TestKeepAliveReuse(t *testing.T) {
	srv, conns := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	const n = 50
	for i := range n {
		var res *Response
		if i%2 == 0 {
			res = r.mustFetch(&Request{URL: fmt.Sprintf("%s/%d", srv.URL, i)})
		} else {
			res = r.mustDo(&Request{URL: fmt.Sprintf("%s/%d", srv.URL, i)})
		}
		if res.Header.Get("X-Path") != fmt.Sprintf("/%d", i) {
			t.Fatalf("request %d got %q", i, res.Header.Get("X-Path"))
		}
		if i > 0 && res.Timings.Connect != 0 {
			t.Fatalf("request %d connected again (Timings.Connect %v)", i, res.Timings.Connect)
		}
	}
	if got := conns.n.Load(); got != 1 {
		t.Fatalf("the server saw %d connections for %d sequential requests, want 1", got, n)
	}
}

// N concurrent requests to an HTTP/2 server share one connection: the
// handler holds every request until all N have arrived, so they were in
// flight together, and the server saw one connection.
func TestHTTP2Multiplexing(t *testing.T) {
	const n = 20
	var arrived atomic.Int32
	all := make(chan struct{})
	var protoOK atomic.Int32
	srv, ca, conns := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			protoOK.Add(1)
		}
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-time.After(waitLimit):
			http.Error(w, "not all requests arrived together", 500)
			return
		}
		w.Write([]byte(r.URL.Path))
	}), true)
	r := newRig(t)
	type res struct {
		resp *Response
		err  error
	}
	results := make(chan res, n)
	r.on(func() {
		for i := range n {
			r.c.Fetch(&Request{URL: fmt.Sprintf("%s/%d", srv.URL, i), CAFile: ca, HTTPVersion: HTTP2},
				func(resp *Response, err error) { results <- res{resp, err} })
		}
	})
	for range n {
		select {
		case x := <-results:
			resp := mustOK(t, x.resp, x.err)
			if resp.ProtoMajor != 2 || resp.Proto != "HTTP/2.0" {
				t.Errorf("client saw %s", resp.Proto)
			}
		case <-time.After(waitLimit):
			t.Fatal("not every transfer completed")
		}
	}
	if protoOK.Load() != n {
		t.Errorf("%d of %d requests reached the server over HTTP/2", protoOK.Load(), n)
	}
	if got := conns.n.Load(); got != 1 {
		t.Errorf("the server saw %d connections for %d concurrent HTTP/2 requests, want 1", got, n)
	}
}

// HTTP2PriorKnowledge speaks h2c to a cleartext server; HTTP1 keeps an
// HTTP/2-capable TLS server at HTTP/1.1; the default negotiates HTTP/2.
func TestHTTPVersions(t *testing.T) {
	proto := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Proto)) })
	h2c, _ := newH2CServer(t, proto)
	tlsSrv, ca, _ := newTLSServer(t, proto, true)
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{URL: h2c.URL, HTTPVersion: HTTP2PriorKnowledge}, "HTTP/2.0"},
		{Request{URL: h2c.URL}, "HTTP/1.1"},
		{Request{URL: h2c.URL, HTTPVersion: HTTP2}, "HTTP/1.1"}, // HTTP/2 only over TLS
		{Request{URL: tlsSrv.URL, CAFile: ca, HTTPVersion: HTTP1}, "HTTP/1.1"},
		{Request{URL: tlsSrv.URL, CAFile: ca}, "HTTP/2.0"},
	} {
		// A client of its own each: libcurl may reuse a connection made
		// for one version for a request that would accept it.
		r := newRig(t)
		req := c.req
		res := r.mustDo(&req)
		if string(res.Body) != c.want || res.Proto != c.want {
			t.Errorf("%s to %s: server saw %s, client %s; want %s", req.HTTPVersion, req.URL, res.Body, res.Proto, c.want)
		}
	}
}

// Prior-knowledge HTTP/2 works request after request, also concurrently
// (with libcurl before 8.0, on connections of their own).
func TestHTTP2PriorKnowledgeRepeated(t *testing.T) {
	srv, conns := newH2CServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.Proto)) }))
	r := newRig(t)
	req := &Request{URL: srv.URL, HTTPVersion: HTTP2PriorKnowledge}
	for range 5 {
		if res := r.mustDo(req); string(res.Body) != "HTTP/2.0" {
			t.Fatalf("server saw %s", res.Body)
		}
	}
	if f := pump(t, r, req, 8, 100); f != 0 {
		t.Fatalf("%d of 100 concurrent transfers failed", f)
	}
	t.Logf("%d connections for 105 transfers (libcurl %s)", conns.n.Load(), LibcurlVersion())
}

// Certificates are verified unless told not to; a CA file makes a server
// trusted; a client certificate is presented when given.
func TestTLS(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		}
	})
	srv, ca, _ := newTLSServer(t, hello, false)
	r := newRig(t)

	resp, err := r.do(&Request{URL: srv.URL})
	if e := curlErr(t, resp, err); e.Code != CodePeerFailedVerification {
		t.Errorf("untrusted certificate: %v, want CodePeerFailedVerification", err)
	}
	res := r.mustDo(&Request{URL: srv.URL, CAFile: ca})
	if res.Timings.TLS <= 0 || res.Timings.TLS < res.Timings.Connect {
		t.Errorf("TLS timing %v (connect %v)", res.Timings.TLS, res.Timings.Connect)
	}
	r.mustDo(&Request{URL: srv.URL, InsecureSkipVerify: true})
	// Verification is back on for the next request (the handle is reset).
	resp, err = r.do(&Request{URL: srv.URL + "/again"})
	if e := curlErr(t, resp, err); e.Code != CodePeerFailedVerification {
		t.Errorf("after an insecure request: %v, want CodePeerFailedVerification", err)
	}

	// Client certificates.
	pool, cert, key := clientCertFiles(t)
	mtls, mca, _ := newTLSServerWith(t, hello, false,
		&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	resp, err = r.do(&Request{URL: mtls.URL, CAFile: mca})
	curlErr(t, resp, err)
	res = r.mustDo(&Request{URL: mtls.URL, CAFile: mca, ClientCert: cert, ClientKey: key})
	if string(res.Body) != "test client" {
		t.Errorf("the server saw client certificate %q", res.Body)
	}
}

// A proxy gets the request with its credentials (Basic); wrong ones get
// the proxy's 407, which is a response.
func TestProxyWithAuth(t *testing.T) {
	target, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("direct")) }))
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:p@ss:word"))
	var seen atomic.Value
	proxy, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.String())
		if r.Header.Get("Proxy-Authorization") != want {
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		w.Write([]byte("via proxy: " + r.URL.String()))
	}))
	r := newRig(t)
	res := r.mustDo(&Request{URL: target.URL + "/x", Proxy: proxy.URL, ProxyUser: "user", ProxyPassword: "p@ss:word"})
	if string(res.Body) != "via proxy: "+target.URL+"/x" {
		t.Fatalf("body %q", res.Body)
	}
	res, err := r.do(&Request{URL: target.URL + "/y", Proxy: proxy.URL, ProxyUser: "user", ProxyPassword: "wrong"})
	if err != nil || res.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("wrong credentials: %v %+v", err, res)
	}
	if seen.Load() != target.URL+"/y" {
		t.Fatalf("the proxy saw %v", seen.Load())
	}
	// Without Proxy the next request goes direct (the handle was reset).
	if res := r.mustDo(&Request{URL: target.URL}); string(res.Body) != "direct" {
		t.Fatalf("after proxied requests: %q", res.Body)
	}
}

// Per fd event the path stays in C: a large body arrives over many socket
// events, served by the C core, and reaches Go in one call.
func TestNoGoCrossingPerEvent(t *testing.T) {
	body := bytes.Repeat([]byte("z"), 8<<20)
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// In paced chunks, so that they arrive over many socket events.
		for p := body; len(p) > 0; p = p[256<<10:] {
			w.Write(p[:256<<10])
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond)
		}
	}))
	r := newRig(t)
	r.mustDo(&Request{URL: srv.URL}) // connect, warm up
	var calls0 int64
	r.on(func() { calls0 = r.c.goCalls() })
	before := r.l.Stats()
	res := r.mustDo(&Request{URL: srv.URL})
	after := r.l.Stats()
	var calls int64
	r.on(func() { calls = r.c.goCalls() - calls0 })
	if !bytes.Equal(res.Body, body) {
		t.Fatalf("body of %d bytes", len(res.Body))
	}
	events := after.CEvents - before.CEvents
	if events < 10 || calls != 1 {
		t.Fatalf("%d fd events served in C, %d calls into Go: want many events and 1 call", events, calls)
	}
	t.Logf("8 MiB: %d fd events served in C, %d C->Go call", events, calls)
}

// 100 goroutines calling Do at once all get their own response.
func TestManyGoroutinesDo(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t, WithMaxClients(20))
	const n = 100
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			path := "/g/" + strconv.Itoa(i)
			res, err := r.do(&Request{URL: srv.URL + path, Body: []byte(path)})
			switch {
			case err != nil:
				errs <- err
			case string(res.Body) != path || res.Header.Get("X-Path") != path:
				errs <- fmt.Errorf("goroutine %d got %q for %q", i, res.Body, path)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Responses over HTTP/2 keep their header (lowercase on the wire,
// canonical here).
func TestHTTP2Header(t *testing.T) {
	srv, ca, _ := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Custom-Field", "v")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Write([]byte("h2"))
	}), true)
	r := newRig(t)
	res := r.mustDo(&Request{URL: srv.URL, CAFile: ca})
	if res.Proto != "HTTP/2.0" || res.Header.Get("X-Custom-Field") != "v" || len(res.Header["Set-Cookie"]) != 2 ||
		res.Status != "200" {
		t.Fatalf("%s %q %v", res.Proto, res.Status, res.Header)
	}
}

// The proxy environment variables are not consulted: a request without
// Proxy goes direct even when http_proxy names a proxy.
func TestNoProxyFromEnvironment(t *testing.T) {
	direct, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("direct")) }))
	proxy, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("proxied")) }))
	t.Setenv("http_proxy", proxy.URL)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("all_proxy", proxy.URL)
	r := newRig(t)
	if res := r.mustDo(&Request{URL: direct.URL}); string(res.Body) != "direct" {
		t.Fatalf("went through the environment's proxy: %q", res.Body)
	}
}
