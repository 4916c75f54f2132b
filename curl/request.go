package curl

import (
	"io"
	"net/http"
	"time"
)

// HTTPVersion selects the HTTP version a request asks for.
type HTTPVersion int

const (
	// HTTPVersionDefault is libcurl's choice: HTTP/2 over TLS when the
	// server offers it (ALPN), HTTP/1.1 otherwise.
	HTTPVersionDefault HTTPVersion = iota
	// HTTP1 is HTTP/1.1 only.
	HTTP1
	// HTTP2 asks for HTTP/2 over TLS and falls back to HTTP/1.1 when the
	// server does not offer it; http:// URLs use HTTP/1.1.
	HTTP2
	// HTTP2PriorKnowledge speaks HTTP/2 at once, without negotiation, also
	// over cleartext (h2c): for servers known to support it. With libcurl
	// older than 8.0, which fails a transfer that reuses such a connection
	// (curl/curl#10634), each transfer gets a connection of its own.
	HTTP2PriorKnowledge
)

func (v HTTPVersion) String() string {
	switch v {
	case HTTPVersionDefault:
		return "default"
	case HTTP1:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	case HTTP2PriorKnowledge:
		return "HTTP/2 (prior knowledge)"
	}
	return "HTTPVersion(?)"
}

// Request is one HTTP request. The client never modifies it, so one
// Request may be fetched any number of times, also concurrently; it must
// not be modified while a fetch of it is pending. The zero value of every
// field is a sensible default.
type Request struct {
	// Method is the HTTP method; "" means GET. HEAD asks for no body.
	Method string
	// URL is an http:// or https:// URL (libcurl parses it; other schemes
	// fail with CodeUnsupportedProtocol).
	URL string
	// Header holds the request's header fields. A field with an empty
	// value is sent empty. Names must be HTTP tokens and values must not
	// contain CR, LF or NUL, or the request fails with ErrInvalidRequest.
	// libcurl adds Host, Accept: */* and, for a body, Content-Length or
	// Transfer-Encoding; a field set here replaces libcurl's, and a field
	// set with a nil value slice removes it.
	Header http.Header

	// Body is the request body. With a body (Body or BodyReader) and no
	// Method, the method is POST. The client adds neither an Expect:
	// 100-continue nor a Content-Type field unless Header has one.
	Body []byte
	// BodyReader, if not nil, is the request body, streamed: a goroutine
	// reads it chunk by chunk while the transfer runs (the loop never waits
	// for it). ContentLength gives its size if it is known (> 0);
	// otherwise HTTP/1.1 sends it chunked. If it is also an io.Closer, the
	// client closes it when the transfer ends (as net/http's Transport
	// closes Request.Body), which also ends a Read that would block. A
	// redirect that needs the body again (307, 308) fails the transfer
	// (libcurl cannot rewind a stream). Set Body or BodyReader, not both.
	BodyReader io.Reader
	// ContentLength is BodyReader's size in bytes, when known (> 0).
	ContentLength int64

	// ConnectTimeout bounds the connection phase (DNS, TCP, TLS); 0 is
	// libcurl's default (300 s).
	ConnectTimeout time.Duration
	// Timeout bounds the whole request, from the call to Fetch or Do until
	// the last byte: it includes the time spent queued behind the client's
	// MaxClients limit (unlike Tornado's request_timeout). 0 means none.
	// On expiry the error matches os.ErrDeadlineExceeded.
	Timeout time.Duration

	// FollowRedirects makes the client follow 3xx responses with a
	// Location, up to MaxRedirects (0 means 10) times, after which the
	// transfer fails with CodeTooManyRedirects. Without it a 3xx is the
	// response.
	FollowRedirects bool
	MaxRedirects    int

	// Decompress asks for every content encoding libcurl can decode (it
	// sends Accept-Encoding) and decodes the body. The response keeps the
	// server's Content-Encoding and Content-Length fields.
	Decompress bool

	// Proxy is a proxy URL ("http://host:port", "socks5://host:port"...)
	// for this request, whatever its host. Empty means no proxy: the
	// http_proxy, https_proxy and no_proxy environment variables are not
	// consulted (as in Tornado's client). ProxyUser and ProxyPassword, if
	// set, authenticate to it (Basic).
	Proxy         string
	ProxyUser     string
	ProxyPassword string

	// InsecureSkipVerify turns off the verification of the server's
	// certificate and host name. CAFile is a PEM bundle of the certificate
	// authorities to trust instead of the system's. ClientCert and
	// ClientKey are PEM files presenting a client certificate.
	InsecureSkipVerify bool
	CAFile             string
	ClientCert         string
	ClientKey          string

	// HTTPVersion is the HTTP version to ask for.
	HTTPVersion HTTPVersion

	// OnHeader, if set, is called with each response header line as it
	// arrives, status lines included, with its line ending: every
	// response's (redirects, 100 Continue) in order. line is valid only
	// during the call. It runs on the loop goroutine, inside libcurl: it
	// may call Fetch and Close (which then take effect in the next loop
	// iteration) but must not block. A non-nil error aborts the transfer;
	// its error wraps it.
	OnHeader func(line []byte) error
	// OnBody, if set, receives the response body chunk by chunk as it
	// arrives, and Response.Body stays nil: the body is never buffered
	// whole. p is valid only during the call (it is libcurl's buffer): copy
	// what you keep. Same rules as OnHeader. A call gets at most 16 KiB
	// (libcurl's CURL_MAX_WRITE_SIZE); such a transfer reads the socket
	// with a 256 KiB buffer (CURLOPT_BUFFERSIZE), which makes a large body
	// cost far fewer system calls.
	OnBody func(p []byte) error
}

// Response is the outcome of a transfer that got a response, whatever its
// status (an HTTP status is not an error).
type Response struct {
	Request *Request
	// StatusCode is the final response's status code; Status its status
	// line after the protocol ("200 OK"; HTTP/2 has no reason phrase).
	StatusCode int
	Status     string
	// Proto is the final response's protocol ("HTTP/1.1", "HTTP/2.0").
	Proto      string
	ProtoMajor int
	ProtoMinor int
	// Header holds the final response's header fields (after redirects),
	// keys in canonical form.
	Header http.Header
	// Body is the response body (nil when empty, or with OnBody).
	Body []byte
	// EffectiveURL is the URL of the final response, after redirects.
	EffectiveURL string
	// Redirects is how many redirects were followed.
	Redirects int
	// Timings are libcurl's per-phase times.
	Timings Timings
}

// Timings are libcurl's times for one transfer (curl_easy_getinfo's
// *_TIME_T). Each phase is measured from the start of the transfer to the
// end of that phase, so they grow in this order, except that a phase that
// did not happen reads 0 (Connect on a reused connection, TLS for
// http://). With redirects they add up over every request, and Redirect
// is the time the earlier ones took.
type Timings struct {
	Queue     time.Duration // waiting for a free slot (see WithMaxClients), before the transfer started
	DNS       time.Duration // name resolved
	Connect   time.Duration // TCP connected (or proxy)
	TLS       time.Duration // TLS handshake done (0 without TLS)
	Sent      time.Duration // about to send the request
	FirstByte time.Duration // first response byte received
	Total     time.Duration // whole transfer
	Redirect  time.Duration // redirects followed, before the final request
}
