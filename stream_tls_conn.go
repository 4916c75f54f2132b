//go:build linux

package ioloop

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tlsTransport is the net.Conn under a stream's tls.Conn. It has two
// lives:
//
//   - During the handshake (file != nil) it is the handshake goroutine's:
//     Read returns the bytes the stream had buffered (prefix), then reads
//     file, a duplicate of the socket in Go's runtime poller with the
//     handshake's deadline; Write writes file.
//   - Afterwards it is the loop goroutine's and never blocks: Read is one
//     read(2), with EAGAIN reported as errWouldBlock, a temporary
//     net.Error that crypto/tls passes up without poisoning the session
//     (partial records stay in its buffer); Write hands the record to the
//     stream's write path (sendRecord), which sends or queues it.
//
// The switch happens on the loop in finishHandshake, after the goroutine
// has reported (AddCallback orders the two).
type tlsTransport struct {
	s      *Stream
	file   *os.File // the handshake goroutine's conn; nil afterwards
	prefix []byte   // handshake: bytes the stream had buffered, read first
	raddr  net.Addr // the peer, known at StartTLS (ClientHelloInfo.Conn may ask on the goroutine)

	// Loop goroutine only, after the handshake.
	drained    bool // a read came back short since fillTLS began: the kernel has nothing more for now
	bestEffort bool // Write sends what the kernel takes at once and drops the rest (Close's close_notify)

	// The record framing of every byte handed to crypto/tls (the
	// handshake's too, so it stays aligned), so that fillTLS can tell when
	// crypto/tls holds no complete record and need not be asked again
	// (see fillTLS). Owned like the transport: the handshake goroutine's,
	// then the loop's.
	hdrGot  int  // bytes of the current record's 5-byte header seen
	lenHi   byte // its length's high byte
	body    int  // bytes of the current record's body still to come
	records int  // complete records handed over since crypto/tls was last seen to hold none
	synced  bool // records counts from such a moment (false until the first would-block after the handshake)
}

// frame follows the record framing over b, the next bytes handed to
// crypto/tls: a 5-byte header whose last two bytes are the body's length,
// then the body.
func (t *tlsTransport) frame(b []byte) {
	for len(b) > 0 {
		if t.hdrGot < 5 {
			for ; t.hdrGot < 5 && len(b) > 0; t.hdrGot++ {
				switch t.hdrGot {
				case 3:
					t.lenHi = b[0]
				case 4:
					t.body = int(t.lenHi)<<8 | int(b[0])
				}
				b = b[1:]
			}
			if t.hdrGot < 5 {
				return
			}
		} else {
			k := min(t.body, len(b))
			t.body -= k
			b = b[k:]
		}
		if t.body == 0 {
			t.records++
			t.hdrGot = 0
		}
	}
}

// wouldBlockError is the transport's EAGAIN: a net.Error whose Temporary
// and Timeout are true, the condition under which crypto/tls's record
// reader returns the error without recording it (conn.go,
// readRecordOrCCS), so the next Read resumes where this one stopped.
type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "ioloop: TLS transport: read would block" }
func (wouldBlockError) Timeout() bool   { return true }
func (wouldBlockError) Temporary() bool { return true }
func (wouldBlockError) Unwrap() error   { return syscall.EAGAIN }

// errWouldBlock is returned as is (an empty struct in an interface: no
// allocation), and fillTLS compares with it.
var errWouldBlock net.Error = wouldBlockError{}

func (t *tlsTransport) Read(p []byte) (int, error) {
	if t.file != nil {
		if len(t.prefix) > 0 {
			n := copy(p, t.prefix)
			t.prefix = t.prefix[n:]
			t.frame(p[:n])
			return n, nil
		}
		n, err := t.file.Read(p)
		t.frame(p[:n])
		return n, err
	}
	if t.drained || len(p) == 0 {
		return 0, errWouldBlock
	}
	for {
		n, e := rawRead(t.s.fd, p)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			t.drained = true
			return 0, errWouldBlock
		case e != 0:
			return 0, os.NewSyscallError("read", e)
		case n == 0:
			return 0, io.EOF
		}
		// A short read drained the socket: asking again before epoll
		// says there is more would cost a read(2) that says EAGAIN.
		t.drained = n < len(p)
		t.frame(p[:n])
		return n, nil
	}
}

func (t *tlsTransport) Write(p []byte) (int, error) {
	if t.file != nil {
		return t.file.Write(p)
	}
	if t.bestEffort {
		if !t.s.is(fClosed) && t.s.fd >= 0 {
			t.s.writeOnce(p)
		}
		return len(p), nil
	}
	if err := t.s.sendRecord(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close is never called by the stream (it closes its fd itself); crypto/tls
// calls it only from tls.Conn.Close and a cancelled HandshakeContext,
// neither of which the stream uses.
func (t *tlsTransport) Close() error { return nil }

func (t *tlsTransport) LocalAddr() net.Addr {
	if t.file == nil {
		return t.s.LocalAddr()
	}
	// On the handshake goroutine (a GetConfigForClient asking): the
	// duplicate is the goroutine's, the stream's fd is not.
	var addr net.Addr
	if rc, err := t.file.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if sa, err := unix.Getsockname(int(fd)); err == nil {
				addr = sockaddrToAddr(sa, int(fd))
			}
		})
	}
	return addr
}

// RemoteAddr is never nil: crypto/tls calls RemoteAddr().String() (a
// client's session cache key when the Config has no ServerName).
func (t *tlsTransport) RemoteAddr() net.Addr {
	if t.raddr == nil {
		return unknownAddr{}
	}
	return t.raddr
}

// unknownAddr is the address of a peer the socket would not name.
type unknownAddr struct{}

func (unknownAddr) Network() string { return "unknown" }
func (unknownAddr) String() string  { return "unknown" }

// The deadlines are the handshake's (crypto/tls sets none of its own then);
// afterwards nothing blocks, and closeNotify's deadlines mean nothing.
func (t *tlsTransport) SetDeadline(d time.Time) error {
	if t.file != nil {
		return t.file.SetDeadline(d)
	}
	return nil
}

func (t *tlsTransport) SetReadDeadline(d time.Time) error {
	if t.file != nil {
		return t.file.SetReadDeadline(d)
	}
	return nil
}

func (t *tlsTransport) SetWriteDeadline(d time.Time) error {
	if t.file != nil {
		return t.file.SetWriteDeadline(d)
	}
	return nil
}
