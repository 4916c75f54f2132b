// Package goid identifies the calling goroutine cheaply, so the loop can
// tell its own goroutine from others on paths that run once per connection
// or request. It lives in its own package because Go assembly is not
// allowed in a package that uses cgo.
package goid
