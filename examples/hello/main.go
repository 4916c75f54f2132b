//go:build linux

// Command hello is the seed's "Hello World" on ioloop: an HTTP/1.1
// keep-alive server that answers every request with 200 OK, Content-Type
// text/plain and the body "Hello, world!" (HEAD: the same headers, no
// body).
//
// It is an example and the HTTP benchmark target, not an HTTP framework:
// it frames requests correctly (pipelining, Content-Length bodies read and
// discarded, HTTP/1.0 and Connection: close) and answers bad input clearly
// before closing (400 malformed request, 431 head over 8 KiB, 413 body too
// large, 501 any Transfer-Encoding, 505 HTTP/2+ on this port), and a read
// timeout closes connections that stall (slowloris). It does not route,
// decode chunked bodies or look at anything else in a request.
//
// With -tls-cert and -tls-key it serves HTTPS instead (TLS 1.2 and 1.3
// with crypto/tls, HTTP/1.1 chosen by ALPN): the same server on TLS
// streams (ioloop.WithTLS), each handshake on a short-lived goroutine and
// everything after it on the loops. curl --cacert and Go's http client
// with the CA work against it.
//
// SIGINT or SIGTERM stops it gracefully: idle connections close at once,
// busy ones (a request half read or an answer not yet taken) get -grace
// (5 s) to finish, and then it says how many it closed.
//
//	hello -addr 127.0.0.1:8888 -loops 2
//	hello -addr 127.0.0.1:8443 -tls-cert cert.pem -tls-key key.pem
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ioloop-go/ioloop"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address, host:port")
	loops := flag.Int("loops", 1, "event loops, one OS thread each (SO_REUSEPORT listeners)")
	grace := flag.Duration("grace", 5*time.Second, "on SIGINT/SIGTERM, how long busy connections may finish before they are closed")
	timeout := flag.Duration("timeout", 10*time.Second, "close a connection whose request (or next request) stalls this long")
	certFile := flag.String("tls-cert", "", "serve HTTPS with this certificate chain (PEM); needs -tls-key")
	keyFile := flag.String("tls-key", "", "the certificate's private key (PEM)")
	flag.Parse()
	log.SetFlags(0)
	// Catch signals before announcing the address: whoever reads the
	// "listening on" line may send SIGTERM at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)

	// The read timeout also bounds the TLS handshake.
	opts := []ioloop.ServerOption{ioloop.WithStreamOptions(ioloop.WithReadTimeout(*timeout), ioloop.WithHandshakeTimeout(*timeout))}
	scheme := "http"
	if *certFile != "" || *keyFile != "" {
		cfg, err := tlsConfig(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("hello: %v", err)
		}
		opts = append(opts, ioloop.WithTLS(cfg))
		scheme = "https"
	}
	g, err := ioloop.ListenGroup("tcp", *addr, *loops, serve, opts...)
	if err != nil {
		log.Fatalf("hello: %v", err)
	}
	log.Printf("listening on %s (%s)", g.Addr(), scheme)

	<-ctx.Done()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	var cut *ioloop.ShutdownError
	switch err := g.Shutdown(sctx); {
	case errors.As(err, &cut) && err == error(cut):
		// Not a failure: the grace period ended and Shutdown closed what
		// was still open, as asked. Say so rather than "context deadline
		// exceeded".
		log.Printf("shutdown: closed %d connection%s still open after the %v grace period",
			cut.Closed, plural(cut.Closed), *grace)
	case err != nil:
		log.Printf("shutdown: %v", err)
	}
}

// tlsConfig loads the certificate for HTTPS: HTTP/1.1 is the one
// protocol offered by ALPN (a client asking for h2 gets HTTP/1.1).
func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// helloBody ends every 200 answer; a HEAD answer is the same without it.
const helloBody = "Hello, world!"

var (
	okKeepAlive = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n" + helloBody)
	// HTTP/1.0 clients need to be told that the connection stays open.
	okKeepAlive10 = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n" + helloBody)
	okClose       = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n" + helloBody)
)

// isHead reports whether req is a HEAD request. Its answer carries the
// headers a GET would get, Content-Length included, and no body (RFC 9110
// 9.3.2): a body there would be read as the start of the next answer on a
// keep-alive connection.
func isHead(req *Request) bool { return string(req.Method) == "HEAD" }

// withoutBody returns resp cut before its body of n bytes.
func withoutBody(resp []byte, n int) []byte { return resp[:len(resp)-n] }

// bodyChunk is how much of a request body is discarded per read.
const bodyChunk = 64 << 10

// conn is one connection's state. Its callbacks are bound once, so serving
// a request allocates nothing.
type conn struct {
	s        *ioloop.Stream
	onHead   func([]byte, error)
	onBody   func([]byte, error)
	bodyLeft int64
	resp     []byte
	close    bool
}

func serve(s *ioloop.Stream, _ net.Addr) {
	c := &conn{s: s}
	c.onHead = c.head
	c.onBody = c.body
	c.next()
}

// next waits for the next request head.
func (c *conn) next() {
	_ = c.s.ReadUntil(crlfcrlf, DefaultLimits.MaxHeadBytes, c.onHead)
}

func (c *conn) head(p []byte, err error) {
	if err != nil {
		if errors.Is(err, ioloop.ErrDelimiterNotFound) {
			c.fail(ErrHeaderTooLarge, false) // the method is unknown: answer as to a GET
		}
		return // EOF, reset or timeout: the stream is closing already
	}
	req, _, err := ParseRequest(p, DefaultLimits)
	if err != nil {
		// A request line that parsed leaves the method in req.
		c.fail(err, isHead(&req))
		return
	}
	switch {
	case !req.KeepAlive:
		c.resp, c.close = okClose, true
	case req.Minor == 0:
		c.resp = okKeepAlive10
	default:
		c.resp = okKeepAlive
	}
	if isHead(&req) {
		c.resp = withoutBody(c.resp, len(helloBody))
	}
	if req.ContentLength > 0 {
		c.bodyLeft = req.ContentLength
		_ = c.s.ReadBytes(int(min(c.bodyLeft, bodyChunk)), c.onBody)
		return
	}
	c.respond()
}

// body discards a chunk of the request body.
func (c *conn) body(p []byte, err error) {
	if err != nil {
		return
	}
	if c.bodyLeft -= int64(len(p)); c.bodyLeft > 0 {
		_ = c.s.ReadBytes(int(min(c.bodyLeft, bodyChunk)), c.onBody)
		return
	}
	c.respond()
}

func (c *conn) respond() {
	if err := c.s.Write(c.resp, nil); err != nil {
		return
	}
	if c.close {
		c.s.CloseAfterFlush()
		return
	}
	c.next()
}

// fail answers a bad request (without the body when it was a HEAD) and
// closes the connection once the answer is out.
func (c *conn) fail(err error, head bool) {
	code := Status(err)
	body := err.Error() + "\n"
	msg := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, statusText[code], len(body), body)
	if head {
		msg = msg[:len(msg)-len(body)]
	}
	_ = c.s.Write([]byte(msg), nil)
	c.s.CloseAfterFlush()
}

var statusText = map[int]string{
	400: "Bad Request",
	413: "Content Too Large",
	431: "Request Header Fields Too Large",
	501: "Not Implemented",
	505: "HTTP Version Not Supported",
}
