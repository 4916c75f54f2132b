// Command nbio is the nbio peer of the benchmark suite: nbio's raw Engine
// (not nbhttp) with one poller, so it compares event loops, not HTTP stacks.
// With -tls-cert and -tls-key it serves over nbio's TLS, the non-blocking
// fork of crypto/tls in github.com/lesismal/llib that nbhttp uses, fed the
// way nbhttp's own HTTPS server feeds it (llib tls.Conn.AppendAndRead in
// OnData).
//
//	nbio -addr 127.0.0.1:8888 -mode echo|hello [-tls-cert FILE -tls-key FILE]
package main

import (
	"flag"
	"log"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/mempool"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address host:port")
	mode := flag.String("mode", "echo", "echo or hello")
	certFile := flag.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls-key", "", "and this private key (PEM)")
	flag.Parse()
	engine := nbio.NewEngine(nbio.Config{Network: "tcp", Addrs: []string{*addr}, NPoller: 1})
	proto := "TCP"
	switch {
	case *mode != "echo" && *mode != "hello":
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	case *certFile != "" || *keyFile != "":
		serveTLS(engine, *mode, *certFile, *keyFile)
		proto = "TLS"
	case *mode == "echo":
		engine.OnData(func(c *nbio.Conn, data []byte) {
			if _, err := c.Write(data); err != nil {
				c.Close()
			}
		})
	default:
		// OnData's buffer is the poller's, reused after the call:
		// minihttp.Conn keeps the unparsed tail between reads.
		engine.OnOpen(func(c *nbio.Conn) { c.SetSession(&minihttp.Conn{}) })
		engine.OnData(func(c *nbio.Conn, data []byte) {
			out, err := c.Session().(*minihttp.Conn).Feed(data)
			if len(out) > 0 {
				if _, werr := c.Write(out); werr != nil {
					err = werr
				}
			}
			if err != nil {
				c.Close()
			}
		})
	}
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	log.Printf("nbio %s listening on %s with %s, 1 poller", *mode, *addr, proto)
	select {}
}

// tlsConn is a connection's TLS state and, in hello mode, its HTTP framing.
type tlsConn struct {
	tls  *tls.Conn
	http minihttp.Conn
}

func serveTLS(engine *nbio.Engine, mode, certFile, keyFile string) {
	fixLLibAESDetection() // llibcpu.go: without it llib always picks ChaCha20-Poly1305
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// llib's fork predates Go 1.17, where crypto/tls began choosing the
		// TLS 1.3 suite itself; without this it follows the client (wrk
		// asks for AES-256-GCM first), with it, it picks what crypto/tls
		// and the C peer pick (AES-128-GCM on AES-NI hardware).
		PreferServerCipherSuites: true,
	}
	engine.OnOpen(func(c *nbio.Conn) {
		const isClient, nonBlocking = false, true
		c.SetSession(&tlsConn{tls: tls.NewConn(c, cfg, isClient, nonBlocking, mempool.DefaultMemPool)})
	})
	engine.OnData(func(c *nbio.Conn, data []byte) {
		tc := c.Session().(*tlsConn)
		defer tc.tls.ResetOrFreeBuffer()
		// As nbhttp: append the ciphertext, then decrypt record by record
		// into the poller's buffer, which AppendAndRead has copied from.
		in := data
		for {
			_, n, err := tc.tls.AppendAndRead(in, data)
			in = nil
			if err != nil {
				c.CloseWithError(err)
				return
			}
			if n == 0 {
				return
			}
			out := data[:n]
			var herr error
			if mode == "hello" {
				out, herr = tc.http.Feed(out)
			}
			if len(out) > 0 {
				if _, err := tc.tls.Write(out); err != nil {
					c.CloseWithError(err)
					return
				}
			}
			if herr != nil {
				c.Close()
				return
			}
		}
	})
}
