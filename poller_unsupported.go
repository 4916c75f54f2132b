//go:build !linux || !cgo

package ioloop

import (
	"fmt"
	"runtime"
)

// newPoller on a build without the epoll core: New and Instance report
// ErrUnsupported at run time, so code that imports ioloop still compiles
// everywhere (like go-sqlite3 without cgo).
func newPoller(batchSink) (poller, error) {
	return nil, fmt.Errorf("%w (this build: GOOS=%s, cgo enabled=%v)", ErrUnsupported, runtime.GOOS, cgoEnabled)
}
