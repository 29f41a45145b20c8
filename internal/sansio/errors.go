package sansio

import "fmt"

// Error is a violation of the protocol found in received or outgoing data. It
// carries the reply code that the specification assigns to the violation,
// which is also the code to close the connection or channel with.
type Error struct {
	Code ReplyCode
	Text string
}

func (e *Error) Error() string {
	return fmt.Sprintf("amqp: %s (%d): %s", e.Code, uint16(e.Code), e.Text)
}

func errorf(code ReplyCode, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}
