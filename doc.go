// Package ioloop is Tornado's IOLoop for Go: a level-triggered event loop
// over arbitrary file descriptors, driven by a small C epoll core through
// cgo.
//
// Go's runtime poller has no public API for file descriptors that Go did
// not open, and the Go event-loop libraries are socket servers. ioloop is
// for the other cases: C libraries that hand out fds (libcurl multi-socket,
// c-ares, libpq async, ZeroMQ, libusb, D-Bus), Linux fds such as inotify,
// timerfd, signalfd or netlink, serial ports, and thousands of sockets
// served from one locked OS thread with single-threaded callbacks.
//
// The API is Tornado's: Instance, AddHandler(fd, handler, events), Start,
// AddCallback, CallLater, PeriodicCallback and RunSync. Events Read, Write
// and Error are exactly EPOLLIN, EPOLLOUT and EPOLLERR|EPOLLHUP.
//
// # Threading
//
// Start runs the loop on the calling goroutine, locked to its OS thread.
// Handlers, callbacks and timers all run there, one at a time, so they need
// no locks among themselves. The loop's methods may be called from any
// goroutine; AddCallback is the way to hand work to the loop. A Stream is
// the exception: it belongs to its loop, and its methods run on the loop
// goroutine (or before Start); off the loop, Close and the setters hop over
// by themselves and the other methods return ErrNotOnLoop (see Stream).
//
// # Correctness guarantees
//
//   - A handler receives only the events it asked for that are ready, plus
//     Error conditions.
//   - After RemoveHandler returns, on any goroutine, the handler is not
//     running and is not called again, even for an event already in the
//     batch being dispatched; events meant for an earlier owner of a reused
//     fd number are dropped (each registration carries a generation through
//     epoll_data).
//
// # C libraries
//
// CAPI hands C code a table of functions (csrc/ioloop_api.h) to watch fds
// and run timers with C callbacks, served by the loop's C core without
// crossing into Go; the curl package drives libcurl that way.
//   - Panics in handlers, callbacks and timers are recovered and logged
//     with their stack; the loop goes on.
//
// # Platforms
//
// Linux with cgo only. Elsewhere, or with CGO_ENABLED=0, the package still
// compiles, and New returns an error wrapping ErrUnsupported.
package ioloop
