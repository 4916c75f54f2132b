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
	default:
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	}
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	log.Printf("nbio %s listening on %s with 1 poller", *mode, *addr)
	select {}
}
