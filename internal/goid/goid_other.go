//go:build !amd64 && !arm64

package goid

import "syscall"

// Current identifies the calling goroutine (see goid_asm.go). Without the
// assembly fast path it returns the OS thread: a running loop's goroutine
// is locked to its thread and no other goroutine runs there, so the thread
// tells the loop goroutine from every other one. That costs a system call.
func Current() uintptr { return uintptr(syscall.Gettid()) }
