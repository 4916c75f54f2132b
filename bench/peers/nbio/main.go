// Command nbio is the nbio peer of the benchmark suite: nbio's raw Engine
// (not nbhttp) with one poller, so it compares event loops, not HTTP stacks.
//
//	nbio -addr 127.0.0.1:8888 -mode echo|hello
package main

import (
	"flag"
	"log"

	"github.com/lesismal/nbio"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
)

// helloConn holds the unparsed tail of the input (OnData's buffer is the
// poller's, reused after the call) and the response buffer.
type helloConn struct{ in, out []byte }

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address host:port")
	mode := flag.String("mode", "echo", "echo or hello")
	flag.Parse()
	engine := nbio.NewEngine(nbio.Config{Network: "tcp", Addrs: []string{*addr}, NPoller: 1})
	switch *mode {
	case "echo":
		engine.OnData(func(c *nbio.Conn, data []byte) {
			if _, err := c.Write(data); err != nil {
				c.Close()
			}
		})
	case "hello":
		engine.OnOpen(func(c *nbio.Conn) { c.SetSession(&helloConn{}) })
		engine.OnData(func(c *nbio.Conn, data []byte) {
			hc := c.Session().(*helloConn)
			buf := data
			if len(hc.in) > 0 {
				hc.in = append(hc.in, data...)
				buf = hc.in
			}
			out, used, err := minihttp.Serve(hc.out[:0], buf)
			hc.out = out
			hc.in = append(hc.in[:0], buf[used:]...)
			if len(out) > 0 {
				if _, werr := c.Write(out); werr != nil {
					err = werr
				}
			}
			if err != nil {
				c.Close()
			}
		})
	default:
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	}
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	log.Printf("nbio %s listening on %s with 1 poller", *mode, *addr)
	select {}
}
