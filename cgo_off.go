//go:build !cgo

package ioloop

const cgoEnabled = false
