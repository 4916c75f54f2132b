package ioloop_test

import (
	"fmt"
	"log"
	"net"
	"os"
	"syscall"

	"github.com/ioloop-go/ioloop"
)

// The seed's pattern: a listening socket registered for Read with
// AddHandler, a handler that accepts connections, and Instance().Start().
// Here the handler greets one client and stops the loop.
func Example() {
	loop := ioloop.Instance()

	// A non-blocking listening socket on 127.0.0.1, any port.
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(os.NewSyscallError("socket", err))
	}
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		log.Fatal(os.NewSyscallError("bind", err))
	}
	if err := syscall.Listen(lfd, 128); err != nil {
		log.Fatal(os.NewSyscallError("listen", err))
	}
	sa, err := syscall.Getsockname(lfd)
	if err != nil {
		log.Fatal(os.NewSyscallError("getsockname", err))
	}
	port := sa.(*syscall.SockaddrInet4).Port

	err = loop.AddHandler(lfd, ioloop.HandlerFunc(func(fd int, ev ioloop.Events) {
		conn, _, err := syscall.Accept4(fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			if err != syscall.EAGAIN { // EAGAIN: another readiness event will come
				log.Print(os.NewSyscallError("accept4", err))
			}
			return
		}
		defer syscall.Close(conn)
		if _, err := syscall.Write(conn, []byte("Hello, world!\n")); err != nil {
			log.Print(os.NewSyscallError("write", err)) // the client went away
		}
		loop.Stop()
	}), ioloop.Read)
	if err != nil {
		log.Fatal(err)
	}

	// A client, from another goroutine.
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		fmt.Print("client got: ", string(buf[:n]))
	}()

	if err := loop.Start(); err != nil { // returns after Stop
		log.Fatal(err)
	}
	<-clientDone
	_ = loop.RemoveHandler(lfd)
	_ = syscall.Close(lfd)
	// Output: client got: Hello, world!
}
