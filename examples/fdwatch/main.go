//go:build linux

// Command fdwatch shows why ioloop exists: file descriptors that are not
// sockets, driven by the same loop as the network. It watches a directory
// with inotify and ticks with a timerfd, both registered with AddHandler,
// prints every event as it happens, and streams the same lines to every
// TCP client connected to -addr (try `nc 127.0.0.1 8888`; on Debian, nc
// comes with the netcat-openbsd package, not installed by default).
//
//	fdwatch -dir /tmp -tick 5s -addr 127.0.0.1:8888 -loops 1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ioloop-go/ioloop"
	"golang.org/x/sys/unix"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8888", "listen address for event subscribers, host:port")
	loops := flag.Int("loops", 1, "event loops, one OS thread each (SO_REUSEPORT listeners)")
	dir := flag.String("dir", ".", "directory to watch")
	tick := flag.Duration("tick", 0, "also print a timerfd tick at this interval (0: off)")
	grace := flag.Duration("grace", 2*time.Second, "on SIGINT/SIGTERM, how long busy subscribers may finish before they are closed")
	flag.Parse()
	log.SetFlags(0)
	// Catch signals before announcing the address: whoever reads the
	// "listening on" line may send SIGTERM at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)

	var subs subscribers
	g, err := ioloop.ListenGroup("tcp", *addr, *loops, subs.add)
	if err != nil {
		log.Fatalf("fdwatch: %v", err)
	}
	l := g.Loops()[0] // the watchers live on the first loop
	emit := func(line string) {
		fmt.Println(line)
		subs.broadcast(line + "\n")
	}
	closeWatch, err := watchDir(l, *dir, emit)
	if err != nil {
		log.Fatalf("fdwatch: %v", err)
	}
	closeTick := func() {}
	if *tick > 0 {
		if closeTick, err = ticker(l, *tick, emit); err != nil {
			log.Fatalf("fdwatch: %v", err)
		}
	}
	log.Printf("listening on %s, watching %s", g.Addr(), *dir)

	<-ctx.Done()
	stop()
	done := make(chan struct{})
	_ = l.AddCallback(func() { closeWatch(); closeTick(); close(done) })
	<-done
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	var cut *ioloop.ShutdownError
	switch err := g.Shutdown(sctx); {
	case errors.As(err, &cut) && err == error(cut):
		// The grace period ended and Shutdown closed what was still open,
		// as asked: not a failure.
		log.Printf("shutdown: closed %d subscriber(s) still open after the %v grace period", cut.Closed, *grace)
	case err != nil:
		log.Printf("shutdown: %v", err)
	}
}

// watchDir registers an inotify fd for dir with the loop; the returned
// function (loop goroutine) unregisters and closes it.
func watchDir(l *ioloop.IOLoop, dir string, emit func(string)) (func(), error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", dir, os.NewSyscallError("inotify_add_watch", err))
	}
	buf := make([]byte, 64<<10)
	err = l.AddHandler(fd, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		for {
			n, err := unix.Read(fd, buf)
			if err != nil || n <= 0 {
				return // EAGAIN: drained
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				e := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(e.Len)]), "\x00")
				emit(fmt.Sprintf("%s %s", inotifyOp(e.Mask), name))
				off += unix.SizeofInotifyEvent + int(e.Len)
			}
		}
	}), ioloop.Read)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { _ = l.RemoveHandler(fd); _ = unix.Close(fd) }, nil
}

func inotifyOp(mask uint32) string {
	var ops []string
	for _, m := range []struct {
		bit  uint32
		name string
	}{{unix.IN_CREATE, "CREATE"}, {unix.IN_DELETE, "DELETE"}, {unix.IN_CLOSE_WRITE, "WRITE"},
		{unix.IN_MOVED_FROM, "MOVED_FROM"}, {unix.IN_MOVED_TO, "MOVED_TO"}, {unix.IN_ATTRIB, "ATTRIB"},
		{unix.IN_Q_OVERFLOW, "OVERFLOW"}, {unix.IN_IGNORED, "IGNORED"}} {
		if mask&m.bit != 0 {
			ops = append(ops, m.name)
		}
	}
	if mask&unix.IN_ISDIR != 0 {
		ops = append(ops, "DIR")
	}
	return strings.Join(ops, "|")
}

// ticker registers a periodic timerfd; the count read from it says how many
// intervals passed, so a loop that was busy still reports missed ticks.
func ticker(l *ioloop.IOLoop, every time.Duration, emit func(string)) (func(), error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	ts := unix.NsecToTimespec(every.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("timerfd_settime", err)
	}
	total := uint64(0)
	var b [8]byte
	err = l.AddHandler(fd, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		if n, err := unix.Read(fd, b[:]); err != nil || n != 8 {
			return
		}
		k := *(*uint64)(unsafe.Pointer(&b[0]))
		total += k
		emit(fmt.Sprintf("TICK %d (+%d)", total, k))
	}), ioloop.Read)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { _ = l.RemoveHandler(fd); _ = unix.Close(fd) }, nil
}

// subscribers are the connected TCP clients. They may live on any loop of
// the group, so the set is locked and each write hops to the stream's own
// loop.
type subscribers struct {
	mu  sync.Mutex
	set map[*ioloop.Stream]struct{}
}

func (s *subscribers) add(st *ioloop.Stream, _ net.Addr) {
	s.mu.Lock()
	if s.set == nil {
		s.set = map[*ioloop.Stream]struct{}{}
	}
	s.set[st] = struct{}{}
	s.mu.Unlock()
	st.SetCloseCallback(func(error) {
		s.mu.Lock()
		delete(s.set, st)
		s.mu.Unlock()
	})
	// Read (and ignore) input so a client's close is noticed.
	var discard func([]byte, error)
	discard = func(_ []byte, err error) {
		if err == nil {
			_ = st.ReadSome(discard)
		}
	}
	_ = st.ReadSome(discard)
	_ = st.Write([]byte("fdwatch: subscribed\n"), nil)
}

func (s *subscribers) broadcast(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.set {
		_ = st.Loop().AddCallback(func() {
			if st.Write([]byte(line), nil) != nil {
				st.Close() // closed, or too slow to keep up: drop it
			}
		})
	}
}
