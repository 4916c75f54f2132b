//go:build linux

package ioloop

// The C core on its own, without Go: csrc/test/driver.c exercises every
// entry point and error path of csrc/ioloop.c (see its header). These
// tests build it twice and fail on any report:
//   - with -fsanitize=address,undefined (ASan, LeakSanitizer, UBSan);
//   - without sanitizers, run under valgrind's memcheck.
// The driver also checks that no fd is left open. The whole cgo package
// can be run under ASan as well: ASAN_OPTIONS=detect_leaks=1 go test -asan
// (see RELIABILITY.md).

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var driverSources = []string{"csrc/test/driver.c", "csrc/ioloop.c", "csrc/ioloop_capi.c"}

// The driver injects allocation failures into ioloop.c through --wrap.
var driverFlags = []string{"-std=gnu11", "-g", "-Wall", "-Wextra", "-Werror",
	"-Wl,--wrap=malloc,--wrap=calloc"}

var driverSummary = regexp.MustCompile(`driver: (\d+) checks, 0 failures, (\d+) allocation failures injected`)

// buildDriver compiles the driver with extra flags into dir.
func buildDriver(t *testing.T, name string, extra ...string) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out := filepath.Join(t.TempDir(), name)
	args := append(append(append([]string{}, driverFlags...), extra...), "-o", out)
	args = append(args, driverSources...)
	cmd := exec.Command(cc, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s\n(the sanitizer runtimes come with Debian's gcc: packages gcc, "+
			"libasan8, libubsan1)", cc, strings.Join(args, " "), err, b)
	}
	return out
}

// runDriver runs argv with env added, bounded in time, and returns its
// stdout and stderr; a non-zero exit fails the test.
func runDriver(t *testing.T, env []string, argv ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	// valgrind is a wrapper that runs valgrind.bin as a child: kill the
	// whole process group at the deadline, or the child outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), err, o.String(), e.String())
	}
	return o.String(), e.String()
}

func checkDriverSummary(t *testing.T, stdout string) {
	t.Helper()
	m := driverSummary.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("driver summary missing or reports failures:\n%s", stdout)
	}
	t.Logf("driver: %s checks passed, %s allocation failures injected", m[1], m[2])
}

func TestCCoreUnderSanitizers(t *testing.T) {
	bin := buildDriver(t, "driver-san", "-O1", "-fsanitize=address,undefined",
		"-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
	stdout, stderr := runDriver(t, []string{
		"ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1",
		"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1",
	}, bin)
	for _, report := range []string{"AddressSanitizer", "LeakSanitizer", "runtime error:"} {
		if strings.Contains(stderr, report) {
			t.Fatalf("sanitizer report (%s):\n%s", report, stderr)
		}
	}
	checkDriverSummary(t, stdout)
}

// driverNofile is the RLIMIT_NOFILE soft limit test_grow in driver.c needs:
// 4,200 eventfds plus 64 for everything else (it raises the limit itself
// when it is lower).
const driverNofile = 4200 + 64

// raiseNofileForChildren makes the processes this test binary starts from
// now on begin with a soft RLIMIT_NOFILE of at least need.
//
// valgrind sizes its own fd table from the soft limit it starts with and
// refuses any later raise ("setrlimit(4264): Operation not permitted"), so
// under Docker's default limits (soft 1024, hard 524288) the driver cannot
// raise it as it does natively. Go raises its own soft limit to the hard
// one at start-up but gives children the original soft limit back — unless
// the program called syscall.Setrlimit(RLIMIT_NOFILE), after which children
// inherit the limit as it is (os/exec, Go 1.21+). So: set the soft limit
// to the hard one here (no change for this process, whose soft limit is
// already about that high), which every later child inherits.
func raiseNofileForChildren(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit(RLIMIT_NOFILE): %v", err)
	}
	if lim.Max < need {
		lim.Max = need // needs CAP_SYS_RESOURCE
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit(RLIMIT_NOFILE, %d): %v: the C driver needs %d open files "+
			"(raise the hard limit: ulimit -Hn, docker run --ulimit nofile=...)", lim.Max, err, need)
	}
}

func TestCCoreUnderValgrind(t *testing.T) {
	valgrind, err := exec.LookPath("valgrind")
	if err != nil {
		t.Fatal("valgrind is not installed: this test needs it (Debian package valgrind; " +
			".ci/run installs it)")
	}
	bin := buildDriver(t, "driver-vg", "-O0")
	raiseNofileForChildren(t, driverNofile)
	stdout, stderr := runDriver(t, nil, valgrind, "--error-exitcode=1", "--leak-check=full",
		"--show-leak-kinds=all", "--errors-for-leak-kinds=all", bin)
	if !strings.Contains(stderr, "ERROR SUMMARY: 0 errors") ||
		!strings.Contains(stderr, "All heap blocks were freed") {
		t.Fatalf("valgrind reports problems:\n%s", stderr)
	}
	checkDriverSummary(t, stdout)
}
