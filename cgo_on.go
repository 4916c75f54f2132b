//go:build cgo

package ioloop

const cgoEnabled = true
