//go:build linux

package ioloop

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Connect opens a client connection to addr on network ("tcp", "tcp4",
// "tcp6" or "unix") without blocking the loop, and calls cb on l's loop
// goroutine exactly once: with the connected Stream, or with an error
// (ECONNREFUSED & co wrapped with errors.Is support, or ErrTimeout when
// timeout > 0 passes first). A host name is resolved on another goroutine
// so DNS never blocks the loop. Safe from any goroutine. opts configure the
// Stream; TCP_NODELAY is on.
func Connect(l *IOLoop, network, addr string, timeout time.Duration, cb func(*Stream, error), opts ...StreamOption) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	fail := func(err error) {
		err = fmt.Errorf("ioloop: connect %s %s: %w", network, addr, err)
		if l.AddCallback(func() { cb(nil, err) }) != nil {
			go cb(nil, err) // loop closed: still keep the exactly-once promise
		}
	}
	t, err := quickTarget(network, addr)
	if err != nil {
		fail(err)
		return
	}
	if t.sa != nil {
		if l.AddCallback(func() { startConnect(l, t, network, addr, deadline, cb, opts) }) != nil {
			fail(ErrClosed)
		}
		return
	}
	go func() { // a host name: resolve off the loop
		ctx := context.Background()
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		host, port, _ := net.SplitHostPort(addr)
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err == nil && len(ips) == 0 {
			err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		if err != nil {
			if ctx.Err() != nil {
				err = ErrTimeout
			}
			fail(err)
			return
		}
		pn, err := net.LookupPort("tcp", port)
		if err != nil {
			fail(err)
			return
		}
		t := tcpTarget(network, &net.TCPAddr{IP: pickIP(network, ips), Port: pn, Zone: ips[0].Zone})
		if l.AddCallback(func() { startConnect(l, t, network, addr, deadline, cb, opts) }) != nil {
			fail(ErrClosed)
		}
	}()
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

// startConnect runs on the loop: socket, non-blocking connect, then wait
// for writability (Tornado's IOStream.connect).
func startConnect(l *IOLoop, t sockTarget, network, addr string, deadline time.Time, cb func(*Stream, error), opts []StreamOption) {
	wrap := func(err error) error { return fmt.Errorf("ioloop: connect %s %s: %w", network, addr, err) }
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		cb(nil, wrap(ErrTimeout))
		return
	}
	fd, err := openSocket(t)
	if err != nil {
		cb(nil, wrap(err))
		return
	}
	err = unix.Connect(fd, t.sa)
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		cb(nil, wrap(os.NewSyscallError("connect", err)))
		return
	}
	if t.tcp {
		rawSetNoDelay(fd)
	}
	s := newStream(l, fd, true, opts)
	s.connectCb = func(s *Stream, err error) {
		if err != nil {
			err = wrap(err)
		}
		cb(s, err)
	}
	if err == nil { // connected at once (typical for unix sockets)
		s.connectCb, s.writable = nil, true
		cb(s, nil)
		return
	}
	s.connecting = true
	if !deadline.IsZero() {
		s.connTimer = l.CallAt(deadline, func() {
			s.connTimer = nil
			if s.connecting {
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
	s.connecting = false
	s.writable = true
	if s.connTimer != nil {
		s.loop.RemoveTimeout(s.connTimer)
		s.connTimer = nil
	}
	cb := s.connectCb
	s.connectCb = nil
	cb(s, nil)
}

// connectFailed closes a stream that never connected; it has no user
// callbacks, so there is nothing else to tell.
func (s *Stream) connectFailed(err error) {
	s.connecting = false
	cb := s.connectCb
	s.connectCb = nil
	s.closeNow(err)
	s.closeDone = true
	if cb != nil {
		cb(nil, err)
	}
}
