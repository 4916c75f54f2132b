package ioloop

import "errors"

// Sentinel errors. Methods return them wrapped once with the package and
// the operation ("ioloop: AddHandler(fd 8): fd is already registered"), as
// the standard library's *PathError does, so test with errors.Is. Failed
// system calls are wrapped as *os.SyscallError, so errors.Is(err,
// syscall.EBADF) and friends work too.
var (
	// ErrClosed: the loop has been closed (or could not be created).
	ErrClosed = errors.New("loop is closed")
	// ErrRunning: Start or RunSync on a loop that is already running.
	ErrRunning = errors.New("loop is already running")
	// ErrExists: AddHandler for an fd that already has a handler.
	ErrExists = errors.New("fd is already registered")
	// ErrNotRegistered: UpdateHandler or RemoveHandler for an unknown fd.
	ErrNotRegistered = errors.New("fd is not registered")
	// ErrStopped: RunSync's loop was stopped before its function finished.
	ErrStopped = errors.New("loop stopped before the function finished")
	// ErrUnsupported: this build has no epoll core (not Linux, or cgo off).
	ErrUnsupported = errors.New("unsupported platform: needs Linux (epoll) and cgo (CGO_ENABLED=1 and a C compiler)")
)
