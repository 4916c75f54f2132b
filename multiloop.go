//go:build linux

package ioloop

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Group runs one server on several loops, each on its own goroutine and
// locked OS thread, so one process can use every core: TCP listeners share
// the port with SO_REUSEPORT and the kernel spreads connections across them
// (gnet's WithReusePort, Tornado's fork_processes without the fork); a unix
// socket is shared by dup'd descriptors. A connection lives on the loop
// that accepted it for its whole life.
type Group struct {
	loops   []*IOLoop
	servers []*Server
	addr    net.Addr
	wg      sync.WaitGroup // one per running loop
	once    sync.Once
	errMu   sync.Mutex
	errs    []error // errors returned by Start
}

// ListenGroup creates n loops (n < 1 means 1) and a server on each for
// network and addr, starts the loops, and returns once they are all
// accepting. loops options come from WithLoopOptions. Stop it with
// Shutdown or Close.
func ListenGroup(network, addr string, n int, handler StreamHandler, opts ...ServerOption) (*Group, error) {
	if n < 1 {
		n = 1
	}
	cfg := buildServerConfig(opts)
	if cfg.tls != nil {
		if err := checkServerTLS(cfg.tls); err != nil {
			return nil, err
		}
	}
	if n > 1 && network != "unix" {
		cfg.reusePort = true
	}
	t, err := resolveTarget(network, addr)
	if err != nil {
		return nil, err
	}
	g := &Group{}
	cleanup := func(err error) (*Group, error) {
		for _, sv := range g.servers {
			sv.closeListener() // loops are not running yet: safe here
		}
		for _, l := range g.loops {
			l.Close(false)
		}
		return nil, err
	}
	for i := 0; i < n; i++ {
		l, err := New(cfg.loopOpts...)
		if err != nil {
			return cleanup(err)
		}
		g.loops = append(g.loops, l)
		var fd int
		var bound net.Addr
		path := ""
		switch {
		case i == 0:
			fd, bound, err = listenSocket(t, cfg)
			if t.family == unix.AF_UNIX && !strings.HasPrefix(addr, "@") {
				path = addr
			}
		case t.family == unix.AF_UNIX:
			bound = g.addr
			fd, err = unix.FcntlInt(uintptr(g.servers[0].fd), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				err = os.NewSyscallError("fcntl", err)
			}
		default:
			// Same port as the first listener (which may have been 0).
			t2 := t
			switch sa := t.sa.(type) {
			case *unix.SockaddrInet4:
				c := *sa
				c.Port = g.addr.(*net.TCPAddr).Port
				t2.sa = &c
			case *unix.SockaddrInet6:
				c := *sa
				c.Port = g.addr.(*net.TCPAddr).Port
				t2.sa = &c
			}
			fd, bound, err = listenSocket(t2, cfg)
		}
		if err != nil {
			return cleanup(err)
		}
		sv, err := serveFD(l, fd, bound, t.tcp, path, handler, cfg)
		if err != nil {
			return cleanup(err)
		}
		if i == 0 {
			g.addr = bound
		}
		g.servers = append(g.servers, sv)
	}
	for _, l := range g.loops {
		g.wg.Add(1)
		go func(l *IOLoop) {
			defer g.wg.Done()
			if err := l.Start(); err != nil {
				g.errMu.Lock()
				g.errs = append(g.errs, err)
				g.errMu.Unlock()
			}
		}(l)
	}
	return g, nil
}

// Addr returns the address every loop listens on.
func (g *Group) Addr() net.Addr { return g.addr }

// Loops returns the group's loops, in creation order.
func (g *Group) Loops() []*IOLoop { return g.loops }

// Servers returns the per-loop servers, in the order of Loops.
func (g *Group) Servers() []*Server { return g.servers }

// Shutdown shuts every server down gracefully (see Server.Shutdown) in
// parallel, then stops and closes the loops. If ctx ended while streams
// were busy, the error includes one *ShutdownError with the number of
// streams closed then on all loops; it also includes any error a loop's
// Start returned. Call it from outside the group's loops; later calls
// return nil.
func (g *Group) Shutdown(ctx context.Context) error {
	var err error
	g.once.Do(func() {
		errs := make([]error, len(g.servers))
		var wg sync.WaitGroup
		for i, sv := range g.servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = sv.Shutdown(ctx)
			}()
		}
		wg.Wait()
		// One ShutdownError for the group: the streams cut off on every loop.
		var cut *ShutdownError
		others := errs[:0]
		for _, e := range errs {
			var se *ShutdownError
			if errors.As(e, &se) {
				if cut == nil {
					cut = &ShutdownError{Err: se.Err}
				}
				cut.Closed += se.Closed
			} else if e != nil {
				others = append(others, e)
			}
		}
		if cut != nil {
			others = append(others, cut)
		}
		err = errors.Join(append(others, g.stopLoops())...)
		if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) == 1 {
			err = j.Unwrap()[0] // a lone error as itself: err.(*ShutdownError) works
		}
	})
	return err
}

// Close closes every listener and stream at once, then stops and closes
// the loops. Call it from outside the group's loops.
func (g *Group) Close() error {
	var err error
	g.once.Do(func() {
		for _, sv := range g.servers {
			if sv.Close() == nil {
				<-sv.Done()
			}
		}
		err = g.stopLoops()
	})
	return err
}

func (g *Group) stopLoops() error {
	for _, l := range g.loops {
		l.Stop()
	}
	g.wg.Wait()
	var errs []error
	for _, l := range g.loops {
		if err := l.Close(false); err != nil {
			errs = append(errs, err)
		}
	}
	g.errMu.Lock()
	errs = append(errs, g.errs...)
	g.errMu.Unlock()
	return errors.Join(errs...)
}
