// Command nethttp is the Go net/http peer of the TLS scenarios: what a Go
// user serves HTTPS with, http.Server with a crypto/tls config and
// ListenAndServeTLS, a goroutine per connection. The suite runs it with
// GOMAXPROCS=1, like gonet.
//
// Unlike the other peers it is a full HTTP/1.1 server (request line and
// headers parsed, a Date header added, "Connection: close" honoured by
// closing), so it is the stack a Go user would otherwise pick rather than
// a like-for-like loop; the handler answers the fixed hello body.
//
//	nethttp -addr 127.0.0.1:8443 -mode hello -tls-cert cert.pem -tls-key key.pem
package main

import (
	"flag"
	"log"
	"net/http"
	"runtime"

	"github.com/ioloop-go/ioloop/bench/peers/internal/peertls"
)

var body = []byte("Hello, world!")

func hello(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write(body)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "listen address host:port")
	mode := flag.String("mode", "hello", "hello (the only mode)")
	certFile := flag.String("tls-cert", "", "certificate (PEM)")
	keyFile := flag.String("tls-key", "", "private key (PEM)")
	flag.Parse()
	if *mode != "hello" {
		log.Fatalf("-mode %q: nethttp serves hello only", *mode)
	}
	cfg, err := peertls.Config(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *addr, Handler: http.HandlerFunc(hello), TLSConfig: cfg}
	log.Printf("nethttp hello listening on %s with TLS (GOMAXPROCS=%d)", *addr, runtime.GOMAXPROCS(0))
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
