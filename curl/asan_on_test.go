//go:build asan && linux && cgo

package curl

// Under -asan the allocator keeps freed memory in quarantine, so RSS is no
// measure of leaks there (LeakSanitizer is, at exit).
const asanBuild = true
