package curl

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// Code is a libcurl CURLcode.
type Code int

// The CURLcodes a caller most often tests for (curl.h has them all).
const (
	CodeOK                     Code = 0
	CodeUnsupportedProtocol    Code = 1
	CodeURLMalformat           Code = 3
	CodeCouldntResolveHost     Code = 6
	CodeCouldntConnect         Code = 7
	CodeWeirdServerReply       Code = 8
	CodeHTTP2                  Code = 16
	CodePartialFile            Code = 18
	CodeWriteError             Code = 23
	CodeReadError              Code = 26
	CodeOutOfMemory            Code = 27
	CodeOperationTimedOut      Code = 28
	CodeSSLConnectError        Code = 35
	CodeAbortedByCallback      Code = 42
	CodeTooManyRedirects       Code = 47
	CodeGotNothing             Code = 52
	CodeSendError              Code = 55
	CodeRecvError              Code = 56
	CodeSSLCertProblem         Code = 58
	CodePeerFailedVerification Code = 60
	CodeBadContentEncoding     Code = 61
	CodeHTTP2Stream            Code = 92
)

var (
	// ErrClientClosed: the client was closed before the transfer
	// completed, or Fetch was called after Close.
	ErrClientClosed = errors.New("curl: client closed")
	// ErrDoOnLoop: Do was called on the loop goroutine, where it would
	// wait for the loop it blocks. Use Fetch there.
	ErrDoOnLoop = errors.New("curl: Do called on the loop goroutine (it would block the loop it waits for); use Fetch")
	// ErrInvalidRequest: the request cannot be sent as it is (a nil
	// request, an empty URL, a header or method that would break the
	// message, Body and BodyReader both set).
	ErrInvalidRequest = errors.New("curl: invalid request")
)

// Error is the error of every failed transfer. Code is libcurl's CURLcode
// when libcurl failed it, and CodeOK when it failed outside libcurl
// (cancelled, a client or loop closed, an invalid request). Err is the
// cause when there is one more specific than Code: the context's error, a
// callback's or the body reader's error, ErrClientClosed,
// ioloop.ErrClosed, ErrInvalidRequest. errors.Is(err, os.ErrDeadlineExceeded)
// holds for every timeout (CodeOperationTimedOut), including a Timeout
// that expired while the request was queued.
type Error struct {
	Code    Code
	Message string // libcurl's detailed message (CURLOPT_ERRORBUFFER), or its text for Code
	Method  string
	URL     string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("curl: ")
	if e.Method != "" || e.URL != "" {
		b.WriteString(e.Method)
		b.WriteByte(' ')
		b.WriteString(e.URL)
		b.WriteString(": ")
	}
	if e.Code != CodeOK {
		b.WriteString(e.Message)
		b.WriteString(" (curl error ")
		b.WriteString(strconv.Itoa(int(e.Code)))
		b.WriteByte(')')
		if e.Err != nil {
			b.WriteString(": ")
		}
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes every timeout match os.ErrDeadlineExceeded.
func (e *Error) Is(target error) bool {
	return target == os.ErrDeadlineExceeded && e.Code == CodeOperationTimedOut
}

// Timeout reports whether the transfer timed out (net.Error's method).
func (e *Error) Timeout() bool { return e.Code == CodeOperationTimedOut }
