//go:build !linux

package ioloop

// gettid has no meaning where no loop can run; 0 matches no loop.
func gettid() int64 { return 0 }
