//go:build !linux

package ioloop

// streamShared is what a loop's streams share (stream_shared.go); there
// are no streams off Linux, but IOLoop holds the field on every build.
type streamShared struct{}
