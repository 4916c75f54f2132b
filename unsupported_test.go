//go:build !linux || !cgo

package ioloop

import (
	"errors"
	"strings"
	"testing"
)

// Run with CGO_ENABLED=0 go test -run Unsupported . (CI does).
func TestUnsupportedBuildReportsClearly(t *testing.T) {
	if _, err := New(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("New = %v, want ErrUnsupported", err)
	}
	l := Instance()
	err := l.Start()
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Instance().Start() = %v, want ErrClosed wrapping ErrUnsupported", err)
	}
	if err := l.AddHandler(0, HandlerFunc(func(int, Events) {}), Read); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("AddHandler = %v, want ErrUnsupported", err)
	}
	if err := l.AddCallback(func() {}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("AddCallback = %v, want ErrUnsupported", err)
	}
	if _, err := l.CAPI(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("CAPI = %v, want ErrUnsupported", err)
	}
	if _, err := l.OnClose(func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("OnClose = %v, want ErrClosed", err)
	}
	for _, err := range []error{err, l.AddHandler(0, HandlerFunc(func(int, Events) {}), Read), l.AddCallback(func() {})} {
		if msg := err.Error(); strings.Count(msg, "ioloop:") != 1 {
			t.Errorf("%q names the package more than once", msg)
		}
	}
	t.Log(err)
}
