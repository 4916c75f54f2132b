//go:build linux

package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeersServeCorrectly builds the C epoll peer, the Go net peer and
// ioloop's like-for-like peer and
// puts them through what the suite's check does, plus the cases a benchmark
// run does not reach: messages larger than the socket buffers (partial
// writes, EPOLLOUT), a request head split across writes, bad input closing
// the connection.
func TestPeersServeCorrectly(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	env := &buildEnv{root: filepath.Dir(wd), bench: wd, out: t.TempDir(), goBin: goBinary()}
	for _, p := range []Peer{
		{Name: "cepoll", Build: buildC("cepoll", nil)},
		{Name: "gonet", Build: buildGoPeer("gonet", []string{"GOMAXPROCS=1"})},
		{Name: "ioloop", Build: buildGoPeer("ioloop", nil)},
	} {
		t.Run(p.Name, func(t *testing.T) {
			launch, err := p.Build(env)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			for _, mode := range []string{"echo", "hello"} {
				addr, err := freeAddr()
				if err != nil {
					t.Fatal(err)
				}
				argv, penv := launch(mode, addr, 1)
				srv, err := startServer(argv, penv, addr, -1)
				if err != nil {
					t.Fatalf("%s: start: %v", mode, err)
				}
				t.Cleanup(srv.stop)
				if mode == "echo" {
					testEchoPeer(t, addr)
				} else {
					testHelloPeer(t, addr)
				}
				if err := srv.alive(); err != nil {
					t.Errorf("%s: %v", mode, err)
				}
			}
		})
	}
}

func testEchoPeer(t *testing.T, addr string) {
	for _, cfg := range []LoadConfig{
		{Conns: 8, Size: 64, MaxOps: 50},
		{Conns: 2, Size: 1 << 20, MaxOps: 3}, // far past the socket buffers
	} {
		cfg.Mode, cfg.Addr, cfg.Duration = "echo", addr, 20*time.Second
		if _, err := runLoad(cfg); err != nil {
			t.Errorf("echo %d conns x %d B: %v", cfg.Conns, cfg.Size, err)
		}
	}
}

func testHelloPeer(t *testing.T, addr string) {
	for _, depth := range []int{1, 16} {
		_, err := runLoad(LoadConfig{Mode: "http", Addr: addr, Conns: 4, Depth: depth, MaxOps: 64,
			Duration: 20 * time.Second, Body: helloBodyText})
		if err != nil {
			t.Errorf("hello depth %d: %v", depth, err)
		}
	}
	// A head split across writes is answered once, when complete.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	c.Write([]byte(req[:7]))
	time.Sleep(20 * time.Millisecond)
	c.Write([]byte(req[7:]))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("split request: %q, %v", got, err)
	}
	// A head over 8 KiB without its end closes the connection.
	c.Write(bytes.Repeat([]byte("a"), 9000))
	n, err := c.Read(got)
	if n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("oversized head: read %d bytes, err %v; want the connection closed", n, err)
	}
}
