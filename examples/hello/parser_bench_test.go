package main

import "testing"

// The request heads the benchmark suite sends, and one a browser sends.
var benchHeads = []struct{ name, head string }{
	// bench's load generator (http-100-pipeline16).
	{"loadgen", "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"},
	// wrk -t1 -c100 (http-100).
	{"wrk", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n\r\n"},
	// A browser's: ten headers, Connection among them.
	{"browser", "GET /index.html?q=1 HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Language: en-US,en;q=0.5\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\n" +
		"Connection: keep-alive\r\n" +
		"Upgrade-Insecure-Requests: 1\r\n" +
		"Sec-Fetch-Dest: document\r\n" +
		"Sec-Fetch-Mode: navigate\r\n" +
		"Cache-Control: max-age=0\r\n\r\n"},
}

// BenchmarkParseRequest parses one whole head per op, as the hello server
// does once per request.
func BenchmarkParseRequest(b *testing.B) {
	for _, h := range benchHeads {
		b.Run(h.name, func(b *testing.B) {
			in := []byte(h.head)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, n, err := ParseRequest(in, DefaultLimits); err != nil || n != len(in) {
					b.Fatalf("n %d err %v", n, err)
				}
			}
		})
	}
}
