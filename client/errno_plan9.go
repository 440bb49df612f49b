package client

import "errors"

// Plan 9 has no errno: an ICMP refusal is not told apart there, and the
// call times out instead.
var errConnRefused = errors.New("connection refused")
