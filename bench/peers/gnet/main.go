// Command gnet is the gnet v2 peer of the benchmark suite: one event loop by
// default (gnet's own default is one loop per CPU only with multicore), and
// -loops N > 1 turns on multicore with N loops and SO_REUSEPORT listeners for
// the multi-loop scenario, the same shape as ioloop's multi-loop server.
//
//	gnet -addr 127.0.0.1:8888 -mode echo|hello [-loops 1]
package main

import (
	"flag"
	"log"

	"github.com/panjf2000/gnet/v2"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
)

type echoServer struct{ gnet.BuiltinEventEngine }

func (*echoServer) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	if _, err := c.Write(buf); err != nil {
		return gnet.Close
	}
	return gnet.None
}

// helloServer keeps each connection's response buffer in its context: with
// multicore, OnTraffic runs on several loops at once.
type helloServer struct{ gnet.BuiltinEventEngine }

func (*helloServer) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(new([]byte))
	return nil, gnet.None
}

func (*helloServer) OnTraffic(c gnet.Conn) gnet.Action {
	in, _ := c.Peek(-1)
	out := c.Context().(*[]byte)
	var used int
	var err error
	*out, used, err = minihttp.Serve((*out)[:0], in)
	if _, derr := c.Discard(used); derr != nil || err != nil {
		return gnet.Close
	}
	if len(*out) > 0 {
		if _, werr := c.Write(*out); werr != nil {
			return gnet.Close
		}
	}
	return gnet.None
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address host:port")
	mode := flag.String("mode", "echo", "echo or hello")
	loops := flag.Int("loops", 1, "event loops (>1: multicore with SO_REUSEPORT)")
	flag.Parse()
	var h gnet.EventHandler
	switch *mode {
	case "echo":
		h = &echoServer{}
	case "hello":
		h = &helloServer{}
	default:
		log.Fatalf("unknown -mode %q (want echo or hello)", *mode)
	}
	log.Printf("gnet %s listening on %s with %d loop(s)", *mode, *addr, *loops)
	err := gnet.Run(h, "tcp://"+*addr,
		gnet.WithMulticore(*loops > 1),
		gnet.WithNumEventLoop(*loops),
		gnet.WithReusePort(*loops > 1),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay))
	if err != nil {
		log.Fatal(err)
	}
}
