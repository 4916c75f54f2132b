//go:build linux

package ioloop

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket plumbing shared by Listen and Connect: turning a network/address
// pair into a socket and a sockaddr, and kernel sockaddrs back into
// net.Addr values for handlers.

// errUnsupportedNetwork: the network is not one of tcp, tcp4, tcp6, unix.
var errUnsupportedNetwork = errors.New("ioloop: unsupported network (want tcp, tcp4, tcp6 or unix)")

// sockTarget is a resolved address: the family to open and what to bind
// or connect to.
type sockTarget struct {
	family int
	sa     unix.Sockaddr
	dual   bool // AF_INET6 socket that should also take IPv4 (IPV6_V6ONLY=0)
	tcp    bool
}

// resolveTarget resolves addr for network. host names go through the Go
// resolver, which may block: callers on the loop resolve elsewhere.
func resolveTarget(network, addr string) (sockTarget, error) {
	switch network {
	case "unix":
		if addr == "" {
			return sockTarget{}, fmt.Errorf("ioloop: empty unix socket path: %w", unix.EINVAL)
		}
		return sockTarget{family: unix.AF_UNIX, sa: &unix.SockaddrUnix{Name: addr}}, nil
	case "tcp", "tcp4", "tcp6":
	default:
		return sockTarget{}, fmt.Errorf("%w: %q", errUnsupportedNetwork, network)
	}
	ta, err := net.ResolveTCPAddr(network, addr)
	if err != nil {
		return sockTarget{}, err
	}
	return tcpTarget(network, ta), nil
}

// tcpTarget picks the family the way Go's net package does: IPv4 for
// IPv4 addresses and tcp4, IPv6 otherwise, and a dual-stack IPv6 socket
// for a wildcard "tcp" listener.
func tcpTarget(network string, ta *net.TCPAddr) sockTarget {
	t := sockTarget{tcp: true}
	ip4 := ta.IP.To4()
	switch {
	case network == "tcp4" || (network == "tcp" && ip4 != nil && !isWildcard(ta.IP)):
		sa := &unix.SockaddrInet4{Port: ta.Port}
		if ip4 != nil {
			copy(sa.Addr[:], ip4)
		}
		t.family, t.sa = unix.AF_INET, sa
	default:
		sa := &unix.SockaddrInet6{Port: ta.Port}
		copy(sa.Addr[:], ta.IP.To16())
		if ta.Zone != "" {
			if ifi, err := net.InterfaceByName(ta.Zone); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			} else if n, err := strconv.Atoi(ta.Zone); err == nil {
				sa.ZoneId = uint32(n)
			}
		}
		t.family, t.sa = unix.AF_INET6, sa
		t.dual = network == "tcp" && isWildcard(ta.IP)
	}
	return t
}

func isWildcard(ip net.IP) bool { return ip == nil || ip.IsUnspecified() }

// openSocket creates a non-blocking close-on-exec stream socket for t.
func openSocket(t sockTarget) (int, error) {
	fd, err := unix.Socket(t.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if t.family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, boolInt(!t.dual)); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	return fd, nil
}

// sockaddrToAddr converts a kernel address of a stream socket.
func sockaddrToAddr(sa unix.Sockaddr, _ int) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *unix.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		return &net.TCPAddr{IP: ip, Port: a.Port, Zone: zoneName(a.ZoneId)}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	return strconv.Itoa(int(id))
}

// rawToAddr converts what accept4 wrote into rsa, without the allocation
// of an intermediate unix.Sockaddr.
func rawToAddr(rsa *unix.RawSockaddrAny) net.Addr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		return &net.TCPAddr{IP: net.IPv4(p.Addr[0], p.Addr[1], p.Addr[2], p.Addr[3]), Port: int(port[0])<<8 | int(port[1])}
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		ip := make(net.IP, net.IPv6len)
		copy(ip, p.Addr[:])
		return &net.TCPAddr{IP: ip, Port: int(port[0])<<8 | int(port[1]), Zone: zoneName(p.Scope_id)}
	case unix.AF_UNIX:
		p := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
		n := 0
		for n < len(p.Path) && p.Path[n] != 0 {
			n++
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(p.Path[i])
		}
		return &net.UnixAddr{Name: string(b), Net: "unix"}
	}
	return nil
}
