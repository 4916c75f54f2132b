//go:build !asan && linux && cgo

package curl

const asanBuild = false
