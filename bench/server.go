//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startPinned starts cmd with its CPU affinity set to cpu (or inherited when
// cpu < 0). The mask is set on the calling OS thread just for the fork, so
// the child inherits it before its first instruction: every thread it ever
// starts (a Go runtime's included) is pinned, and a Go child sizes
// GOMAXPROCS from it. taskset would do the same with one more process.
func startPinned(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity(CPU %d): %w", cpu, err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = fmt.Errorf("restoring affinity: %w", rerr)
	}
	return err
}

// tailBuffer keeps the last few KiB a process wrote, for error reports.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8192 {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-4096:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line written, which is where a dying
// program says why.
func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(t.buf), []byte("\n"))
	return string(bytes.TrimSpace(lines[len(lines)-1]))
}

func (t *tailBuffer) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.buf, []byte(s))
}

// server is one running peer process.
type server struct {
	addr   string
	cmd    *exec.Cmd
	output *tailBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit status, once done
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServer runs argv on a fresh port and waits until it accepts
// connections (or dies, or does not listen within the limit).
func startServer(argv []string, env []string, addr string, cpu int) (*server, error) {
	s := &server{addr: addr, output: &tailBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout = s.output
	s.cmd.Stderr = s.output
	// Its own process group: an interrupted suite's Ctrl-C reaches the
	// servers through our cleanup, not twice.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := startPinned(s.cmd, cpu); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			if why := s.unsupported(); why != "" {
				return nil, &unsupportedError{why}
			}
			return nil, fmt.Errorf("exited before listening (%v): %s", s.err, s.output.lastLine())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("not listening on %s after 20s: %s", addr, s.output.lastLine())
		}
	}
}

// exitUnsupported is the exit status of a peer that cannot serve what it
// was asked (the ioloop peer while the library has no ListenTLS): it exits
// before listening, its last line saying why, and its cell is skipped
// rather than failed. peers/ioloop/tls.go has the same constant. 69 is
// sysexits.h's EX_UNAVAILABLE.
const exitUnsupported = 69

// unsupportedError: the peer cannot take part in the scenario.
type unsupportedError struct{ reason string }

func (e *unsupportedError) Error() string { return e.reason }

// unsupported says why a server that exited before listening cannot take
// part, or "" when it just failed. A program of the repository outside
// bench/ (examples/hello) that has no -tls-cert flag yet is unsupported
// too: the flag package names the flag it does not know.
func (s *server) unsupported() string {
	var ee *exec.ExitError
	if errors.As(s.err, &ee) && ee.ExitCode() == exitUnsupported {
		return s.output.lastLine()
	}
	if s.output.contains("flag provided but not defined: -tls-cert") {
		return "no -tls-cert flag: TLS not supported yet"
	}
	return ""
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// alive reports an error if the server has exited.
func (s *server) alive() error {
	select {
	case <-s.done:
		return fmt.Errorf("server exited (%v): %s", s.err, s.output.lastLine())
	default:
		return nil
	}
}

// stop sends SIGTERM, then SIGKILL if the server has not exited in 3 s.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// runChild runs a helper process (the load generator or wrk) pinned to cpu,
// returning its stdout, and its stderr folded into the error.
func runChild(ctx context.Context, cpu int, argv []string, env []string) ([]byte, *os.ProcessState, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stdout bytes.Buffer
	stderr := &tailBuffer{}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startPinned(cmd, cpu); err != nil {
		return nil, nil, err
	}
	err := cmd.Wait()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%s timed out", argv[0])
		}
		if line := stderr.lastLine(); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
	}
	return stdout.Bytes(), cmd.ProcessState, err
}

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}
