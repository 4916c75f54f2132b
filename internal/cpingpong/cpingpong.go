//go:build linux && cgo

// Package cpingpong is the baseline for ioloop's dispatch benchmarks: the
// same socketpair ping-pong as BenchmarkDispatch, written as a plain C
// epoll loop, so both can be measured side by side in one run. It is used
// only by tests and benchmarks.
package cpingpong

/*
#cgo CFLAGS: -O2 -std=gnu11 -Wall
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

// Bounce one byte across each of npairs socketpairs until `events` read
// events have been handled; returns the number handled or -errno. fds holds
// the pairs as [a0, b0, a1, b1, ...]; every a has a byte in flight.
static long pingpong(const int *fds, int npairs, long events) {
	struct epoll_event evs[256], ev;
	long handled = 0;
	char c;
	int epfd = epoll_create1(EPOLL_CLOEXEC), i;
	if (epfd < 0)
		return -errno;
	for (i = 0; i < 2 * npairs; i++) {
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)(uint32_t)fds[i];
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			long rc = -errno;
			close(epfd);
			return rc;
		}
	}
	while (handled < events) {
		int n = epoll_wait(epfd, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			handled = -errno;
			break;
		}
		for (i = 0; i < n; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64;
			if (read(fd, &c, 1) == 1 && write(fd, &c, 1) == 1)
				handled++;
		}
	}
	close(epfd);
	return handled;
}
*/
import "C"

import (
	"syscall"
	"unsafe"
)

// Run bounces bytes over the socketpairs in fds ([a0, b0, a1, b1, ...],
// one byte already written into each pair) until events read events were
// handled, in one C call.
func Run(fds []int32, events int) (int, error) {
	rc := C.pingpong((*C.int)(unsafe.Pointer(&fds[0])), C.int(len(fds)/2), C.long(events))
	if rc < 0 {
		return 0, syscall.Errno(-rc)
	}
	return int(rc), nil
}
