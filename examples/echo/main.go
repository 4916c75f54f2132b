//go:build linux

// Command echo is a TCP echo server on ioloop: whatever a client sends
// comes straight back. It is the smallest useful Stream program, and its
// per-round-trip path is as cheap as the library allows: one read into
// the stream's reused buffer, one write of that same slice, no
// allocation (bench/peers/ioloop, the benchmark's echo peer, is the same
// program).
//
//	echo -addr 127.0.0.1:8888 -loops 2
//
// SIGINT or SIGTERM stops it gracefully: idle connections close at once,
// busy ones get -grace (5 s) to finish, and then it says how many it
// closed.
package main

import (
	"context"
	"errors"
	"flag"
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
	flag.Parse()
	log.SetFlags(0)
	// Catch signals before announcing the address: whoever reads the
	// "listening on" line may send SIGTERM at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)

	g, err := ioloop.ListenGroup("tcp", *addr, *loops, serve)
	if err != nil {
		log.Fatalf("echo: %v", err)
	}
	log.Printf("listening on %s", g.Addr())

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

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// conn is one client. Its two callbacks are bound once, so the steady
// state allocates nothing.
type conn struct {
	s      *ioloop.Stream
	onData func([]byte, error)
	resume func()
}

func serve(s *ioloop.Stream, _ net.Addr) {
	c := &conn{s: s}
	c.onData = c.data
	c.resume = c.resumeReading
	_ = s.ReadSome(c.onData)
}

func (c *conn) data(p []byte, err error) {
	if err != nil {
		return // EOF or an error: the stream closes itself, after flushing
	}
	if err := c.s.Write(p, nil); err != nil {
		c.s.Close()
		return
	}
	if c.s.WriteQueueLen() > 0 {
		// The client is not reading: stop reading too until it catches up.
		c.s.OnDrain(c.resume)
		return
	}
	_ = c.s.ReadSome(c.onData)
}

func (c *conn) resumeReading() {
	c.s.OnDrain(nil)
	_ = c.s.ReadSome(c.onData)
}
