// Command gonet is the Go net peer of the benchmark suite: the standard
// library's goroutine per connection on the runtime netpoller, which is what a
// Go user gets without any event-loop library. The suite runs it with
// GOMAXPROCS=1 (one core, like the other single-loop peers); -loops N sets
// GOMAXPROCS=N for the multi-loop scenario. With -tls-cert and -tls-key it
// serves the same over crypto/tls (tls.NewListener): the TLS scenarios'
// like-for-like Go peer, beside net/http.
//
//	gonet -addr 127.0.0.1:8888 -mode echo|hello [-loops 1] [-tls-cert FILE -tls-key FILE]
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net"
	"runtime"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
	"github.com/ioloop-go/ioloop/bench/peers/internal/peertls"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address host:port")
	mode := flag.String("mode", "echo", "echo or hello")
	loops := flag.Int("loops", 0, "GOMAXPROCS (0: keep the environment's)")
	certFile := flag.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "and this private key (PEM)")
	flag.Parse()
	if *loops > 0 {
		runtime.GOMAXPROCS(*loops)
	}
	serve := map[string]func(net.Conn){"echo": echo, "hello": hello}[*mode]
	if serve == nil {
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	proto := "TCP"
	if *certFile != "" || *keyFile != "" {
		cfg, err := peertls.Config(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		ln, proto = tls.NewListener(ln, cfg), "TLS" // the handshake runs in the connection's first Read
	}
	log.Printf("gonet %s listening on %s with %s (GOMAXPROCS=%d)", *mode, ln.Addr(), proto, runtime.GOMAXPROCS(0))
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c)
	}
}

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func hello(c net.Conn) {
	defer c.Close()
	in := make([]byte, 0, 64<<10)
	var out []byte
	for {
		if len(in) == cap(in) {
			in = append(in, 0)[:len(in)]
		}
		n, err := c.Read(in[len(in):cap(in)])
		in = in[:len(in)+n]
		var used int
		var herr error
		out, used, herr = minihttp.Serve(out[:0], in)
		in = in[:copy(in, in[used:])]
		if len(out) > 0 {
			if _, werr := c.Write(out); werr != nil {
				return
			}
		}
		if err != nil || herr != nil {
			return
		}
	}
}
