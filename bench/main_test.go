package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
)

// TestMain lets the test binary play the suite's child processes, so the
// tests drive the real runner end to end: "-loadgen JSON" is the load
// generator (as the bench binary re-executes itself), and
// BENCH_TEST_ROLE=server makes it a tiny peer server taking the peers'
// command line (-addr A -mode echo|hello|corrupt-echo, -tls-cert F -tls-key
// F), plus -exit-after-conns N and -touch-mib N for the runner's own tests;
// -mode unsupported exits as a peer that cannot serve TLS does, and -mode
// flagless as a program without the TLS flags.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "-loadgen" {
		os.Exit(loadgenMain(os.Args[2]))
	}
	if os.Getenv("BENCH_TEST_ROLE") == "server" {
		os.Exit(testPeerServer(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// ballast is what -touch-mib keeps resident.
var ballast []byte

func testPeerServer(args []string) int {
	var addr, mode, certFile, keyFile string
	exitAfter, touchMiB := -1, 0
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "-addr":
			addr = args[i+1]
		case "-mode":
			mode = args[i+1]
		case "-tls-cert":
			certFile = args[i+1]
		case "-tls-key":
			keyFile = args[i+1]
		case "-exit-after-conns": // exit when accepting one more
			exitAfter, _ = strconv.Atoi(args[i+1])
		case "-touch-mib": // make this much memory resident first
			touchMiB, _ = strconv.Atoi(args[i+1])
		}
	}
	switch mode {
	case "unsupported":
		fmt.Fprintln(os.Stderr, "TLS not supported yet: this test peer says so")
		return exitUnsupported
	case "flagless":
		fs := flag.NewFlagSet("flagless", flag.ContinueOnError)
		fs.String("addr", "", "")
		fs.String("mode", "", "")
		if fs.Parse(args) != nil {
			return 2
		}
		mode = "hello"
	}
	handle := map[string]func(net.Conn){
		"echo":         echoHandler,
		"corrupt-echo": corruptingEcho,
		"hello":        httpHandler("200 OK", helloBody),
	}[mode]
	if handle == nil {
		fmt.Fprintf(os.Stderr, "test server: unknown mode %q\n", mode)
		return 2
	}
	ballast = make([]byte, touchMiB<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test server:", err)
		return 1
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "test server:", err)
			return 1
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	for accepted := 0; ; accepted++ {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		if accepted == exitAfter {
			fmt.Fprintf(os.Stderr, "test server: exiting after %d connections\n", accepted)
			return 3
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}
