package ioloop

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"runtime/debug"
)

// logPanic logs msg with the recovered value r, attrs and the stack of the
// panicking goroutine (call it from the deferred recover).
//
// A structured handler (JSON, text, or the application's own) gets the
// stack as the "stack" attribute, where a newline is data. slog's default
// handler, which forwards to the log package, prints a record as one line
// and escapes the newlines in its attributes, which leaves a stack
// unreadable; there the record is logged without it and the stack follows
// through the log package, one frame per line.
func logPanic(lg *slog.Logger, msg string, r any, attrs ...any) {
	stack := debug.Stack()
	attrs = append(attrs, "panic", r)
	if !isLogBridge(lg.Handler()) {
		lg.Error(msg, append(attrs, "stack", string(stack))...)
		return
	}
	lg.Error(msg, attrs...)
	log.Print("ioloop: stack of the panic above:\n" + string(bytes.TrimRight(stack, "\n")))
}

// isLogBridge reports whether h is slog's default handler, the one that
// forwards to the log package (slog.Default() until slog.SetDefault).
func isLogBridge(h slog.Handler) bool {
	return fmt.Sprintf("%T", h) == "*slog.defaultHandler"
}
