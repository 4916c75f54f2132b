package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// Every error a caller sees names the package once, then the operation,
// then the cause, as the standard library's *PathError does: never
// "ioloop: AddHandler(fd 8): ioloop: fd is already registered".
func checkErrorText(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "ioloop: ") || strings.Count(msg, "ioloop:") != 1 {
		t.Errorf("%s: %q: want exactly one leading \"ioloop: \"", what, msg)
	}
}

func TestLoopErrorsNameThePackageOnce(t *testing.T) {
	l, _ := newTestLoop(t)
	r, _ := pipe(t)
	h := ioloop.HandlerFunc(func(int, ioloop.Events) {})
	if err := l.AddHandler(r, h, ioloop.Read); err != nil {
		t.Fatal(err)
	}
	err := l.AddHandler(r, h, ioloop.Read)
	if !errors.Is(err, ioloop.ErrExists) {
		t.Fatalf("second AddHandler = %v", err)
	}
	checkErrorText(t, "AddHandler twice", err)
	checkErrorText(t, "UpdateHandler of an unknown fd", l.UpdateHandler(r+1000, ioloop.Read))
	checkErrorText(t, "RemoveHandler of an unknown fd", l.RemoveHandler(r+1000))
	checkErrorText(t, "AddHandler of a negative fd", l.AddHandler(-1, h, ioloop.Read))
	checkErrorText(t, "AddHandler of a closed fd", l.AddHandler(99999, h, ioloop.Read))

	stop := startLoop(t, l)
	checkErrorText(t, "Start while running", l.Start())
	checkErrorText(t, "RunSync while running", l.RunSync(context.Background(), func(done func(error)) { done(nil) }))
	_ = stop()

	if err := l.Close(false); err != nil {
		t.Fatal(err)
	}
	checkErrorText(t, "Close twice", l.Close(false))
	checkErrorText(t, "Start after Close", l.Start())
	checkErrorText(t, "AddCallback after Close", l.AddCallback(func() {}))
	checkErrorText(t, "AddHandler after Close", l.AddHandler(r, h, ioloop.Read))
	_, err = l.CAPI()
	checkErrorText(t, "CAPI after Close", err)

	got := make(chan error, 1)
	ioloop.Connect(l, "tcp", "127.0.0.1:1", time.Second, func(_ *ioloop.Stream, err error) { got <- err })
	checkErrorText(t, "Connect on a closed loop", recv(t, got, "the connect callback"))
}
