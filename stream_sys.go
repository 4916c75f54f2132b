//go:build linux

package ioloop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The stream's hot-path system calls. They use RawSyscall, which skips the
// Go scheduler's entersyscall/exitsyscall bookkeeping: measured on our VMs
// that bookkeeping costs microseconds of CPU per call under load, more than
// the call itself. It is safe only because every fd here is non-blocking,
// so no call can park the loop's thread.

// rawRead is read(2).
func rawRead(fd int, p []byte) (int, unix.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// rawWrite is send(2) with MSG_NOSIGNAL on sockets, so a dead peer is an
// EPIPE and never a SIGPIPE, and write(2) on anything else (the Go runtime
// ignores SIGPIPE for fds other than 1 and 2, which gives EPIPE there too).
func rawWrite(fd int, p []byte, sock bool) (int, unix.Errno) {
	var r uintptr
	var e unix.Errno
	if sock {
		r, _, e = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	} else {
		r, _, e = unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	}
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// rawWritev is sendmsg(2) with MSG_NOSIGNAL on sockets, writev(2) else.
func rawWritev(fd int, iov []unix.Iovec, msg *unix.Msghdr, sock bool) (int, unix.Errno) {
	var r uintptr
	var e unix.Errno
	if sock {
		msg.Iov = &iov[0]
		msg.SetIovlen(len(iov))
		r, _, e = unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), unix.MSG_NOSIGNAL)
	} else {
		r, _, e = unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	}
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// rawAccept is accept4(2) with SOCK_NONBLOCK|SOCK_CLOEXEC, filling rsa.
func rawAccept(fd int, rsa *unix.RawSockaddrAny, salen *uint32) (int, unix.Errno) {
	*salen = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(salen)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}

// rawSetNoDelay sets TCP_NODELAY on a freshly accepted socket.
func rawSetNoDelay(fd int) {
	one := int32(1)
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY,
		uintptr(unsafe.Pointer(&one)), 4, 0)
}
