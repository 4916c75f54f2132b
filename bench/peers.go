package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Peer is one server implementation of the comparison. Every peer is a
// separate program the suite builds and starts, with the same command-line
// shape: -addr host:port, plus -mode echo|hello for those that are one binary
// and -loops N for those that can run several loops.
type Peer struct {
	Name  string
	Desc  string
	Lang  string // "c", "go" or "python": the verdict compares ioloop with the best Go peer
	Ours  bool   // one of this project's rows (its failure fails the suite)
	Multi bool   // takes part in the multi-loop scenario
	// Kinds lists the scenario kinds ("echo", "http", "https") the peer
	// takes part in; nil means the plaintext ones, echo and http. A peer in
	// https gets -tls-cert FILE -tls-key FILE after its usual flags.
	Kinds []string
	// Build makes the peer runnable and returns how to start it; a
	// *skipError means the toolchain or a package is missing.
	Build func(e *buildEnv) (Launcher, error)
}

// Launcher returns the command line and extra environment of a peer's
// server for one mode ("echo" or "hello") and loop count.
type Launcher func(mode, addr string, loops int) (argv, env []string)

// skipError is a missing toolchain or package: the peer is left out with a
// one-line reason rather than failing the suite.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

func skipf(format string, args ...any) error {
	return &skipError{fmt.Sprintf(format, args...)}
}

// buildEnv says where things are.
type buildEnv struct {
	root  string // the repository (module github.com/ioloop-go/ioloop)
	bench string // bench/ (module .../bench)
	out   string // bench/.build
	goBin string
}

// The names the verdict compares: ioloop's like-for-like row, the C
// reference, and in the TLS scenarios the C/OpenSSL reference and Go's
// net/http (the targets of issue 12).
const (
	headlinePeer     = "ioloop"
	referencePeer    = "cepoll"
	referenceTLSPeer = "copenssl"
	netHTTPPeer      = "nethttp"
)

// Scenario kinds, as peers list them.
var (
	plainKinds = []string{"echo", "http"}
	allKinds   = []string{"echo", "http", "https"}
)

// peers are the suite's peers, in the order they run within a repetition
// and appear in the tables.
func peers() []Peer {
	return append([]Peer{
		{Name: headlinePeer, Lang: "go", Ours: true, Multi: true, Kinds: allKinds, Desc: "this project, like for like: peers/ioloop, the public API (Listen, ReadSome, Write) doing what every other peer does; TLS through ioloop.ListenTLS", Build: buildGoPeer("ioloop", nil)},
		{Name: "ioloop-hello", Lang: "go", Ours: true, Kinds: []string{"http", "https"}, Desc: "this project's examples/hello: a real HTTP/1.1 server (request line and headers parsed, ReadUntil per head)", Build: buildIoloopHello},
		{Name: referencePeer, Lang: "c", Desc: "plain C epoll, one thread (the near-physical reference)", Build: buildC("cepoll", nil)},
		{Name: "libevent", Lang: "c", Desc: "libevent 2.1, event_new(EV_READ|EV_PERSIST) + read/write", Build: buildC("libevent", []string{"-levent"})},
		{Name: referenceTLSPeer, Lang: "c", Kinds: []string{"https"}, Desc: "C epoll + OpenSSL 3, non-blocking SSL_read/SSL_write, set up like crypto/tls's defaults (the TLS reference)", Build: buildC("copenssl", []string{"-lssl", "-lcrypto"})},
		{Name: "gonet", Lang: "go", Multi: true, Kinds: allKinds, Desc: "Go net, goroutine per connection, GOMAXPROCS=1; crypto/tls (tls.NewListener) in TLS", Build: buildGoPeer("gonet", []string{"GOMAXPROCS=1"})},
		{Name: netHTTPPeer, Lang: "go", Kinds: []string{"https"}, Desc: "Go net/http with crypto/tls (http.Server, ListenAndServeTLS), GOMAXPROCS=1: a full HTTP server", Build: buildGoPeer("nethttp", []string{"GOMAXPROCS=1"})},
		{Name: "gnet", Lang: "go", Multi: true, Desc: "gnet v2, one event loop (multicore in multi-loop)", Build: buildGoPeer("gnet", nil)},
		{Name: "evio", Lang: "go", Desc: "evio, one loop", Build: buildGoPeer("evio", nil)},
		{Name: "nbio", Lang: "go", Kinds: allKinds, Desc: "nbio Engine, one poller; nbio's TLS (llib's non-blocking crypto/tls fork) in TLS", Build: buildGoPeer("nbio", nil)},
		{Name: "tornado", Lang: "python", Desc: "Tornado: TCPServer echo and tornado.web Hello World", Build: buildTornado},
	}, clientPeers()...)
}

// takesPart reports whether p runs in scenario sc.
func (p *Peer) takesPart(sc Scenario) bool {
	if sc.Kind == "micro" || (sc.Loops > 1 && !p.Multi) {
		return false
	}
	return slices.Contains(p.kinds(), sc.Kind)
}

func (p *Peer) kinds() []string {
	if p.Kinds == nil {
		return plainKinds
	}
	return p.Kinds
}

// firstLine reduces a tool's error output to the line that explains it.
func firstLine(out []byte, err error) string {
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "error") || strings.Contains(line, "cannot") || strings.Contains(line, "no ") ||
			strings.Contains(line, "not ") || strings.Contains(line, "undefined") || strings.Contains(line, "No such") {
			return line
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	if err != nil {
		return err.Error()
	}
	return "failed"
}

func (e *buildEnv) run(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// goBuild builds pkg into bin, always: the go build cache makes an
// up-to-date build cost a fraction of a second. If the build fails for want
// of the network (an image's offline run stage without the module cache)
// where -prepare left a binary, that binary is used and a warning says so; a
// compile error never falls back.
func (e *buildEnv) goBuild(dir, bin, pkg string) error {
	out, err := e.run(dir, nil, e.goBin, "build", "-o", bin, pkg)
	if err == nil {
		return nil
	}
	reason := firstLine(out, err)
	if _, serr := os.Stat(bin); serr == nil && offlineFailure(string(out)) {
		fmt.Fprintf(os.Stderr, "bench: warning: go build %s failed (%s); using the binary already in %s\n", pkg, reason, e.out)
		return nil
	}
	return skipf("go build %s: %s", pkg, reason)
}

func offlineFailure(out string) bool {
	for _, sign := range []string{"dial tcp", "no such host", "module lookup disabled", "GOPROXY", "network is unreachable"} {
		if strings.Contains(out, sign) {
			return true
		}
	}
	return false
}

// buildIoloopHello builds examples/hello from the root module, so the bench
// module's requirements cannot change what users get.
func buildIoloopHello(e *buildEnv) (Launcher, error) {
	if _, err := os.Stat(filepath.Join(e.root, "examples", "hello")); err != nil {
		return nil, skipf("examples/hello not in the tree")
	}
	bin := filepath.Join(e.out, "ioloop-hello")
	if err := e.goBuild(e.root, bin, "./examples/hello"); err != nil {
		return nil, err
	}
	return func(mode, addr string, loops int) ([]string, []string) {
		return []string{bin, "-addr", addr, "-loops", strconv.Itoa(loops)}, nil
	}, nil
}

func buildGoPeer(name string, env []string) func(e *buildEnv) (Launcher, error) {
	return func(e *buildEnv) (Launcher, error) {
		bin := filepath.Join(e.out, name)
		if err := e.goBuild(e.bench, bin, "./peers/"+name); err != nil {
			return nil, err
		}
		return func(mode, addr string, loops int) ([]string, []string) {
			argv := []string{bin, "-addr", addr, "-mode", mode}
			if loops > 1 {
				argv = append(argv, "-loops", strconv.Itoa(loops))
				return argv, nil // -loops sets GOMAXPROCS itself
			}
			return argv, env
		}, nil
	}
}

// buildC compiles bench/peers/NAME/server.c with the system compiler, again
// only when the source is newer than the binary.
func buildC(name string, libs []string) func(e *buildEnv) (Launcher, error) {
	return func(e *buildEnv) (Launcher, error) {
		cc, err := lookCC()
		if err != nil {
			return nil, err
		}
		src := filepath.Join(e.bench, "peers", name, "server.c")
		hdr := filepath.Join(e.bench, "peers", "cshared", "peer.h")
		bin := filepath.Join(e.out, name)
		if newer(bin, src, hdr) {
			args := append([]string{"-O2", "-Wall", "-o", bin, src}, libs...)
			if out, err := e.run(e.bench, nil, cc, args...); err != nil {
				line := firstLine(out, err)
				for _, h := range missingHeaders {
					if strings.Contains(line, h.prefix) {
						return nil, skipf("%s headers missing (apt-get install %s): %s", h.lib, h.pkg, line)
					}
				}
				return nil, skipf("%s %s: %s", cc, filepath.Base(src), line)
			}
		}
		return func(mode, addr string, loops int) ([]string, []string) {
			return []string{bin, "-addr", addr, "-mode", mode}, nil
		}, nil
	}
}

// missingHeaders turn a C peer's failed #include into the Debian package
// that brings it.
var missingHeaders = []struct{ prefix, lib, pkg string }{
	{"event2/", "libevent", "libevent-dev"},
	{"openssl/", "OpenSSL", "libssl-dev"},
}

func lookCC() (string, error) {
	for _, cc := range []string{os.Getenv("CC"), "cc", "gcc", "clang"} {
		if cc == "" {
			continue
		}
		if p, err := exec.LookPath(cc); err == nil {
			return p, nil
		}
	}
	return "", skipf("no C compiler (cc, gcc or clang) on PATH")
}

// newer reports whether target is missing or older than any of srcs.
func newer(target string, srcs ...string) bool {
	t, err := os.Stat(target)
	if err != nil {
		return true
	}
	for _, s := range srcs {
		if st, err := os.Stat(s); err != nil || st.ModTime().After(t.ModTime()) {
			return true
		}
	}
	return false
}

// buildTornado finds a Python 3 that imports tornado: Debian's
// python3-tornado lives in /usr/bin/python3's path, which a pyenv or venv
// python3 first on PATH does not see.
func buildTornado(e *buildEnv) (Launcher, error) {
	var tried []string
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(py)
		if err != nil || slices.Contains(tried, p) {
			continue
		}
		tried = append(tried, p)
		if exec.Command(p, "-c", "import tornado").Run() == nil {
			dir := filepath.Join(e.bench, "peers", "tornado")
			return func(mode, addr string, loops int) ([]string, []string) {
				// No __pycache__ in the source tree.
				return []string{p, filepath.Join(dir, mode+".py"), "-addr", addr}, []string{"PYTHONDONTWRITEBYTECODE=1"}
			}, nil
		}
	}
	if len(tried) == 0 {
		return nil, skipf("no python3 on PATH")
	}
	return nil, skipf("tornado not importable by %s (apt-get install python3-tornado)", strings.Join(tried, " or "))
}
