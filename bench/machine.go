//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// machineInfo names the machine for the report: numbers from a noisy shared
// VM and from a quiet workstation are not comparable, ratios mostly are.
func machineInfo(wrk string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPU: cpuModel()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if wrk != "" {
		// wrk -v prints its version and exits non-zero.
		out, _ := exec.Command(wrk, "-v").CombinedOutput()
		// "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
		line, _, _ := strings.Cut(string(out), "\n")
		line, _, _ = strings.Cut(line, " [")
		m.Wrk = strings.TrimSpace(line)
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
