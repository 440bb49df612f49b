package userspace

import (
	"github.com/rebound-net/rebound/codec/rebound"
	"github.com/rebound-net/rebound/handler"
)

// The Rebound-protocol handler contract lives in package handler, so that
// a handler needs nothing of the engine; these names keep the engine's
// API whole.
type (
	// Message is handler.Message.
	Message = handler.Message
	// Handler is handler.Handler.
	Handler = handler.Handler
	// HandlerFunc is handler.HandlerFunc.
	HandlerFunc = handler.HandlerFunc
)

// putReply writes the reply header for m at b[:HeaderLen] (the payload is
// already at b[HeaderLen:]) and returns the reply's size.
func putReply(b []byte, m *Message) int {
	h := rebound.Header{Op: m.Op, Flags: rebound.FlagResponse, Seq: m.Seq, Status: m.Status}
	switch {
	case m.Status != rebound.StatusOK:
		// Error replies are bare headers.
	case m.Truncated:
		h.Flags |= rebound.FlagTruncated
	default:
		h.Len = uint16(len(m.Out))
	}
	rebound.PutHeader(b, h)
	return rebound.HeaderLen + int(h.Len)
}
