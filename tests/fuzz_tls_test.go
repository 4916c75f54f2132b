//go:build linux

package tests

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// FuzzTLSServerStream feeds arbitrary bytes to a TLS server stream (a
// ListenTLS echo server with flow control) over real TCP, and checks that
// whatever arrives ends in a clean close: no crash, no hang (every
// stream gone within testTimeout), no leak (fds and goroutines back to
// where they were, the handshake goroutine's included), no panic logged.
//
// Two shapes, by mode's low bit:
//
//   - 0: the bytes are the whole connection: the handshake parser on its
//     goroutine gets garbage, a cut ClientHello, plaintext.
//   - 1: a crypto/tls client completes a real handshake, encrypts data as
//     application records, and the fuzzer corrupts that record stream
//     (cuts: pairs of position and XOR mask) before it is sent in chunks
//     (sizes from chunks), so the loop's record layer gets partial,
//     split, reordered-by-corruption and cut records. Uncorrupted, the
//     echo must be the data, exactly.
//
// mode's bit 1 ends the connection with close_notify instead of a bare
// FIN; bit 2 with a reset. Seeds live in testdata/fuzz/FuzzTLSServerStream;
// run longer with
//
//	go test -run '^$' -fuzz '^FuzzTLSServerStream$' -fuzztime 5m ./tests/
func FuzzTLSServerStream(f *testing.F) {
	f.Add(uint8(0), []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte{}, []byte{})
	f.Add(uint8(0), []byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00}, []byte{}, []byte{1})
	f.Add(uint8(1), []byte("hello, world"), []byte{}, []byte{3, 1, 7})
	f.Add(uint8(3), bytes.Repeat([]byte("0123456789abcdef"), 2000), []byte{}, []byte{200, 17})
	f.Add(uint8(1), []byte("corrupt me"), []byte{9, 0x40}, []byte{5})
	f.Add(uint8(5), []byte("reset me"), []byte{}, []byte{2})
	f.Fuzz(func(t *testing.T, mode uint8, data, cuts, chunks []byte) {
		runTLSFuzz(t, mode, data, cuts, chunks)
	})
}

func runTLSFuzz(t *testing.T, mode uint8, data, cuts, chunks []byte) {
	if len(data) > 1<<20 {
		data = data[:1<<20]
	}
	p := pki(t)
	fds, goroutines := countFDs(t), runtime.NumGoroutine()
	logs := &logBuffer{}
	l, err := ioloop.New(ioloop.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ioloop.ListenTLS(l, "tcp", "127.0.0.1:0", p.serverConfig(), echo,
		ioloop.WithStreamOptions(ioloop.WithHandshakeTimeout(testTimeout/2)))
	if err != nil {
		l.Close(false)
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- l.Start() }()
	defer func() {
		sv.Close()
		select {
		case <-sv.Done():
		case <-time.After(testTimeout):
			t.Error("the server did not finish closing")
		}
		l.Stop()
		if err := <-started; err != nil {
			t.Errorf("Start: %v", err)
		}
		l.Close(true)
		if out := logs.String(); out != "" {
			t.Errorf("the loop logged (a panic?):\n%s", out)
		}
		deadline := time.Now().Add(testTimeout)
		for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines: %d before, %d after\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
		}
		if n := countFDs(t); n != fds {
			t.Errorf("fds: %d before, %d after", fds, n)
		}
	}()

	raw, err := net.DialTimeout("tcp", sv.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tcp := raw.(*net.TCPConn)
	_ = raw.SetDeadline(time.Now().Add(testTimeout))
	wire := data
	var client *tls.Conn
	if mode&1 == 1 {
		rc := &recordConn{Conn: raw}
		client = tls.Client(rc, &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1"})
		if err := client.Handshake(); err != nil {
			t.Fatal(err)
		}
		rc.mu.Lock()
		rc.capture = true
		rc.mu.Unlock()
		if len(data) > 0 {
			client.Write(data)
		}
		if mode&2 != 0 {
			client.CloseWrite() // close_notify, into the capture too
			// (crypto/tls then sets a write deadline of now on raw)
			_ = raw.SetWriteDeadline(time.Now().Add(testTimeout))
		}
		rc.mu.Lock()
		wire = rc.buf
		rc.mu.Unlock()
		for i := 0; i+1 < len(cuts) && len(wire) > 0; i += 2 {
			wire[int(cuts[i])*97%len(wire)] ^= cuts[i+1] | 1
		}
	}
	// The echo (or whatever comes back) is read concurrently, so the
	// server's answers never wait on this goroutine.
	echoed := make(chan []byte, 1)
	go func() {
		var got []byte
		if client != nil && len(cuts) < 2 {
			got, _ = io.ReadAll(client)
		} else {
			got, _ = io.ReadAll(raw)
		}
		echoed <- got
	}()
	for off, i := 0, 0; off < len(wire); i++ {
		n := len(wire) - off
		if i < len(chunks) {
			n = min(n, int(chunks[i])+1)
		}
		if _, err := raw.Write(wire[off : off+n]); err != nil {
			break // the server gave up on us: fine
		}
		off += n
	}
	if mode&4 != 0 {
		tcp.SetLinger(0)
		tcp.Close()
	} else {
		tcp.CloseWrite()
	}
	var got []byte
	select {
	case got = <-echoed:
	case <-time.After(testTimeout):
		t.Fatal("the server neither answered nor closed the connection")
	}
	deadline := time.Now().Add(testTimeout)
	for sv.NumStreams() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server's stream did not close")
		}
		time.Sleep(time.Millisecond)
	}
	if client != nil && len(cuts) < 2 && mode&4 == 0 && !bytes.Equal(got, data) {
		t.Fatalf("uncorrupted records: echo of %d bytes differs from the %d sent", len(got), len(data))
	}
}
