//go:build linux

// Command ioloop is ioloop's like-for-like peer in the benchmark suite: the
// library used through its public API the way a user would write a small
// server (Listen, then ReadSome and Write on each Stream), doing exactly
// what every other peer does. In hello mode it frames requests like the C
// and Go peers, answering each request head ("\r\n\r\n") with the same
// fixed response through the shared minihttp responder; it does not parse
// request lines or headers. examples/hello, which does, is the suite's
// second ioloop row (ioloop-hello).
//
//	ioloop -addr 127.0.0.1:8888 -mode echo|hello [-loops 1] [-tls-cert FILE -tls-key FILE]
//
// One loop runs on the main goroutine (Instance and Start, as in the
// README); -loops N > 1 uses ListenGroup, one SO_REUSEPORT listener per
// loop, for the multi-loop scenario. -tls-cert and -tls-key serve the same
// over TLS with the Go peers' crypto/tls config, through listenTLS (tls.go:
// the slot for ioloop.ListenTLS). SIGTERM ends it, as it does the other
// peers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/ioloop-go/ioloop"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
	"github.com/ioloop-go/ioloop/bench/peers/internal/peertls"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address host:port")
	mode := flag.String("mode", "echo", "echo or hello")
	loops := flag.Int("loops", 1, "event loops, one OS thread each (SO_REUSEPORT listeners)")
	certFile := flag.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "and this private key (PEM)")
	flag.Parse()
	serve := handler(*mode)
	if serve == nil {
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	}
	if *certFile != "" || *keyFile != "" {
		if *loops > 1 {
			log.Fatal("-tls-cert: one loop only")
		}
		serveTLS(*addr, *mode, *certFile, *keyFile, serve)
		return
	}
	if *loops > 1 {
		g, err := ioloop.ListenGroup("tcp", *addr, *loops, serve)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("ioloop %s listening on %s with %d loops", *mode, g.Addr(), *loops)
		select {}
	}
	loop := ioloop.Instance()
	srv, err := ioloop.Listen(loop, "tcp", *addr, serve)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("ioloop %s listening on %s with 1 loop", *mode, srv.Addr())
	if err := loop.Start(); err != nil {
		log.Fatal(err)
	}
}

// serveTLS is main for -tls-cert: one loop, the handler behind TLS.
func serveTLS(addr, mode, certFile, keyFile string, serve ioloop.StreamHandler) {
	cfg, err := peertls.Config(certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	loop := ioloop.Instance()
	srv, err := listenTLS(loop, addr, cfg, serve)
	if errors.Is(err, errTLSUnsupported) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitUnsupported)
	}
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("ioloop %s listening on %s with TLS, 1 loop", mode, srv.Addr())
	if err := loop.Start(); err != nil {
		log.Fatal(err)
	}
}

// handler returns the stream handler of a mode, nil for an unknown one.
func handler(mode string) ioloop.StreamHandler {
	switch mode {
	case "echo":
		return serveEcho
	case "hello":
		return serveHello
	}
	return nil
}

// echoConn is one echo client. Its callbacks are bound once, so a round
// trip allocates nothing.
type echoConn struct {
	s      *ioloop.Stream
	onData func([]byte, error)
	resume func()
}

func serveEcho(s *ioloop.Stream, _ net.Addr) {
	c := &echoConn{s: s}
	c.onData, c.resume = c.data, c.resumeReading
	_ = s.ReadSome(c.onData)
}

func (c *echoConn) data(p []byte, err error) {
	if err != nil {
		return // EOF or an error: the stream closes itself
	}
	if err := c.s.Write(p, nil); err != nil {
		c.s.Close()
		return
	}
	readOn(c.s, c.onData, c.resume)
}

func (c *echoConn) resumeReading() {
	c.s.OnDrain(nil)
	_ = c.s.ReadSome(c.onData)
}

// helloConn is one HTTP client: minihttp.Conn keeps a request head split
// across reads (ReadSome's slice is only valid during the callback) and
// the responses of one read, both reused, so a request allocates nothing.
type helloConn struct {
	s      *ioloop.Stream
	http   minihttp.Conn
	onData func([]byte, error)
	resume func()
}

func serveHello(s *ioloop.Stream, _ net.Addr) {
	c := &helloConn{s: s}
	c.onData, c.resume = c.data, c.resumeReading
	_ = s.ReadSome(c.onData)
}

func (c *helloConn) data(p []byte, err error) {
	if err != nil {
		return
	}
	out, herr := c.http.Feed(p)
	if len(out) > 0 {
		// One write for every response of the read: pipelined requests
		// get their answers in one segment, as from the other peers.
		if err := c.s.Write(out, nil); err != nil {
			c.s.Close()
			return
		}
	}
	if herr != nil {
		c.s.CloseAfterFlush() // a head over 8 KiB: the other peers close too
		return
	}
	readOn(c.s, c.onData, c.resume)
}

func (c *helloConn) resumeReading() {
	c.s.OnDrain(nil)
	_ = c.s.ReadSome(c.onData)
}

// readOn reads the next data, unless the client is not taking what was
// written: then reading waits until the write queue drains, so a client
// that only sends cannot grow the server's memory without bound.
func readOn(s *ioloop.Stream, onData func([]byte, error), resume func()) {
	if s.WriteQueueLen() > 0 {
		s.OnDrain(resume)
		return
	}
	_ = s.ReadSome(onData)
}
