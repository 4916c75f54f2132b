// Command evio is the evio peer of the benchmark suite, with one loop.
//
//	evio -addr 127.0.0.1:8888 -mode echo|hello
package main

import (
	"flag"
	"log"

	"github.com/tidwall/evio"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address host:port")
	mode := flag.String("mode", "echo", "echo or hello")
	flag.Parse()
	var ev evio.Events
	ev.NumLoops = 1
	ev.Serving = func(s evio.Server) evio.Action {
		log.Printf("evio %s listening on %s with %d loop(s)", *mode, s.Addrs[0], s.NumLoops)
		return evio.None
	}
	switch *mode {
	case "echo":
		ev.Data = func(c evio.Conn, in []byte) ([]byte, evio.Action) { return in, evio.None }
	case "hello":
		// evio's in is the loop's shared buffer: minihttp.Conn keeps the
		// unparsed tail between reads.
		ev.Opened = func(c evio.Conn) ([]byte, evio.Options, evio.Action) {
			c.SetContext(&minihttp.Conn{})
			return nil, evio.Options{}, evio.None
		}
		ev.Data = func(c evio.Conn, in []byte) ([]byte, evio.Action) {
			out, err := c.Context().(*minihttp.Conn).Feed(in)
			if err != nil {
				return out, evio.Close
			}
			return out, evio.None
		}
	default:
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	}
	if err := evio.Serve(ev, "tcp://"+*addr); err != nil {
		log.Fatal(err)
	}
}
