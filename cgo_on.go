//go:build cgo && !linux

package ioloop

// cgoEnabled is reported by the poller of a build without the epoll core
// (poller_unsupported.go): with cgo, that is every platform but Linux.
const cgoEnabled = true
