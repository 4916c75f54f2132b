//go:build linux

package ioloop

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Connect opens a client connection to addr on network ("tcp", "tcp4",
// "tcp6" or "unix") without blocking the loop, and calls cb exactly once:
// with the connected Stream, or with an error (ECONNREFUSED & co wrapped
// with errors.Is support, ErrTimeout when timeout > 0 passes first, or
// ErrClosed when the loop closes first). cb runs on l's loop goroutine,
// except after the loop has closed, when it runs on a goroutine of its
// own. A host name is resolved on another goroutine so DNS never blocks the
// loop. Safe from any goroutine. opts configure the Stream; TCP_NODELAY is
// on.
func Connect(l *IOLoop, network, addr string, timeout time.Duration, cb func(*Stream, error), opts ...StreamOption) {
	c := &connectOp{loop: l, network: network, addr: addr, cb: cb, opts: opts}
	if timeout > 0 {
		c.deadline = time.Now().Add(timeout)
	}
	// If the loop closes before the connect completes, the release tells
	// cb; every other path goes through finish, which cancels this.
	unhook, ok := l.onRelease(c.loopReleased)
	if !ok {
		c.failOffLoop(ErrClosed)
		return
	}
	c.unhook = unhook
	t, err := quickTarget(network, addr)
	if err != nil {
		c.failOffLoop(err)
		return
	}
	if t.sa != nil {
		c.startOnLoop(t)
		return
	}
	go c.resolve() // a host name: resolve off the loop
}

// connectOp is one Connect in flight. done makes the callback exactly-once
// whichever of the loop, the resolver goroutine and the loop's release
// gets there first.
type connectOp struct {
	loop     *IOLoop
	network  string
	addr     string
	deadline time.Time
	cb       func(*Stream, error)
	opts     []StreamOption
	unhook   func()      // cancels the release hook
	done     atomic.Bool // cb has been called or handed to a goroutine
	stream   *Stream     // loop goroutine: the connecting stream, if any
}

func (c *connectOp) wrap(err error) error {
	return fmt.Errorf("ioloop: connect %s %s: %w", c.network, c.addr, err)
}

// finish calls cb, once, on the calling goroutine (the loop's).
func (c *connectOp) finish(s *Stream, err error) {
	if !c.done.CompareAndSwap(false, true) {
		return
	}
	c.unhook()
	if err != nil {
		err = c.wrap(err)
	}
	c.cb(s, err)
}

// failOffLoop reports err from a goroutine that is not the loop's: on the
// loop if it still runs callbacks, else on a goroutine of its own.
func (c *connectOp) failOffLoop(err error) {
	if c.loop.AddCallback(func() { c.finish(nil, err) }) != nil {
		c.failClosed(err)
	}
}

// failClosed reports err once the loop can run nothing any more.
func (c *connectOp) failClosed(err error) {
	if !c.done.CompareAndSwap(false, true) {
		return
	}
	if c.unhook != nil {
		c.unhook()
	}
	go c.cb(nil, c.wrap(err))
}

// loopReleased is the release hook: the loop closed before the connect
// completed. The loop has stopped, so the connecting stream, if any, is
// ours to close here.
func (c *connectOp) loopReleased() {
	if c.done.Load() {
		return
	}
	if s := c.stream; s != nil {
		c.stream = nil
		s.clear(fConnecting)
		s.closeNow(ErrClosed)
		s.set(fCloseDone)
	}
	c.failClosed(ErrClosed)
}

// startOnLoop queues the connect itself on the loop.
func (c *connectOp) startOnLoop(t sockTarget) {
	if c.loop.AddCallback(func() { c.start(t) }) != nil {
		c.failClosed(ErrClosed)
	}
}

// resolve looks a host name up on its own goroutine, then connects on the
// loop.
func (c *connectOp) resolve() {
	ctx := context.Background()
	if !c.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
		defer cancel()
	}
	host, port, _ := net.SplitHostPort(c.addr)
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err == nil && len(ips) == 0 {
		err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ErrTimeout
		}
		c.failOffLoop(err)
		return
	}
	pn, err := net.LookupPort("tcp", port)
	if err != nil {
		c.failOffLoop(err)
		return
	}
	c.startOnLoop(tcpTarget(c.network, &net.TCPAddr{IP: pickIP(c.network, ips), Port: pn, Zone: ips[0].Zone}))
}

// pickIP prefers the family the network asks for, IPv4 for plain "tcp".
func pickIP(network string, ips []net.IPAddr) net.IP {
	for _, ip := range ips {
		if (ip.IP.To4() != nil) == (network != "tcp6") {
			return ip.IP
		}
	}
	return ips[0].IP
}

// quickTarget resolves addresses that need no DNS; for a host name it
// returns a target with a nil sockaddr.
func quickTarget(network, addr string) (sockTarget, error) {
	if network == "unix" {
		return resolveTarget(network, addr)
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return sockTarget{}, fmt.Errorf("%w: %q", errUnsupportedNetwork, network)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return sockTarget{}, err
	}
	if host == "" || net.ParseIP(host) != nil {
		return resolveTarget(network, addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return sockTarget{}, err
	}
	return sockTarget{}, nil
}

// start runs on the loop: socket, non-blocking connect, then wait for
// writability (Tornado's IOStream.connect).
func (c *connectOp) start(t sockTarget) {
	if c.done.Load() {
		return
	}
	if !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		c.finish(nil, ErrTimeout)
		return
	}
	fd, err := openSocket(t)
	if err != nil {
		c.finish(nil, err)
		return
	}
	err = unix.Connect(fd, t.sa)
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		c.finish(nil, os.NewSyscallError("connect", err))
		return
	}
	if t.tcp {
		rawSetNoDelay(fd)
	}
	s := newStream(c.loop, fd, true, newStreamConfig(c.opts))
	s.set(fOwnCfg)
	if err == nil { // connected at once (typical for unix sockets)
		s.set(fWritable)
		c.finish(s, nil)
		return
	}
	c.stream = s
	x := s.ext()
	x.connectCb = func(s *Stream, err error) {
		c.stream = nil
		c.finish(s, err)
	}
	s.set(fConnecting)
	if !c.deadline.IsZero() {
		x.connTimer = c.loop.CallAt(c.deadline, func() {
			x.connTimer = nil
			if s.is(fConnecting) {
				s.connectFailed(ErrTimeout)
			}
		})
	}
	s.updateInterest()
}

// finishConnect runs when a connecting socket reports writable or error.
func (s *Stream) finishConnect() {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && v != 0 {
		err = unix.Errno(v)
	}
	if err != nil {
		s.connectFailed(os.NewSyscallError("connect", err))
		return
	}
	s.clear(fConnecting)
	s.set(fWritable)
	x := s.ext()
	s.loop.RemoveTimeout(x.connTimer)
	x.connTimer = nil
	cb := x.connectCb
	x.connectCb = nil
	cb(s, nil)
}

// connectFailed closes a stream that never connected; it has no user
// callbacks, so there is nothing else to tell.
func (s *Stream) connectFailed(err error) {
	s.clear(fConnecting)
	x := s.ext()
	cb := x.connectCb
	x.connectCb = nil
	s.closeNow(err)
	s.set(fCloseDone)
	if cb != nil {
		cb(nil, err)
	}
}
