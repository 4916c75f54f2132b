//go:build linux && cgo

package curl

import (
	"bytes"
	"net"
	"strconv"
	"testing"
)

// helloServer is a minimal keep-alive HTTP/1.1 server that allocates
// nothing per request, so that the benchmarks' allocations are the
// client's: it answers every request head with the same response.
func helloServer(b testing.TB) string {
	b.Helper()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 14\r\nContent-Type: text/plain\r\n\r\nHello, world!\n")
	return rawServer(b, func(conn net.Conn) {
		buf := make([]byte, 64<<10)
		var pending []byte
		out := make([]byte, 0, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			pending = append(pending, buf[:n]...)
			out = out[:0]
			for {
				i := bytes.Index(pending, []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				pending = pending[i+4:]
				out = append(out, resp...)
			}
			if len(out) > 0 {
				if _, err := conn.Write(out); err != nil {
					return
				}
			}
			if len(pending) == 0 {
				pending = pending[:0:0]
			}
		}
	})
}

// BenchmarkFetch: the steady path, conc transfers in flight refilled from
// the callbacks. allocs/op are the client's (the server allocates nothing
// per request).
func BenchmarkFetch(b *testing.B) {
	for _, conc := range []int{1, 100} {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) {
			url := helloServer(b)
			r := newRig(b)
			req := &Request{URL: url + "/"}
			pump(b, r, req, conc, 1000)
			b.ReportAllocs()
			b.ResetTimer()
			if f := pump(b, r, req, conc, b.N); f != 0 {
				b.Fatalf("%d failed", f)
			}
		})
	}
}
