package ioloop_test

import (
	"fmt"
	"net"
	"syscall"

	"github.com/ioloop-go/ioloop"
)

// The seed's pattern: a listening socket registered for Read with
// AddHandler, a handler that accepts connections, and Instance().Start().
// Here the handler greets one client and stops the loop.
func Example() {
	// A non-blocking listening socket on 127.0.0.1, any port.
	lfd, _ := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	_ = syscall.Bind(lfd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	_ = syscall.Listen(lfd, 128)
	sa, _ := syscall.Getsockname(lfd)
	port := sa.(*syscall.SockaddrInet4).Port

	loop := ioloop.Instance()
	err := loop.AddHandler(lfd, ioloop.HandlerFunc(func(fd int, events ioloop.Events) {
		conn, _, err := syscall.Accept4(fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: another readiness event will come
		}
		_, _ = syscall.Write(conn, []byte("Hello, world!\n"))
		_ = syscall.Close(conn)
		loop.Stop()
	}), ioloop.Read)
	if err != nil {
		fmt.Println("AddHandler:", err)
		return
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
		fmt.Println("Start:", err)
	}
	<-clientDone
	_ = loop.RemoveHandler(lfd)
	_ = syscall.Close(lfd)
	// Output: client got: Hello, world!
}
