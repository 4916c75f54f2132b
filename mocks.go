package ioloop

// Mocks for the seams, used by the white-box tests (gomock, mockgen v1.6.0).
// They live in _test.go files, so the library itself never imports gomock.
//
//go:generate go run github.com/golang/mock/mockgen@v1.6.0 -source=poller.go -destination=mock_poller_test.go -package=ioloop
//go:generate go run github.com/golang/mock/mockgen@v1.6.0 -destination=mock_handler_test.go -package=ioloop -mock_names=Handler=MockHandler github.com/ioloop-go/ioloop Handler
