//go:build linux

package ioloop

import "golang.org/x/sys/unix"

// gettid identifies the OS thread; a running loop's goroutine is locked to
// its thread, so the thread identifies the loop goroutine.
func gettid() int64 { return int64(unix.Gettid()) }
