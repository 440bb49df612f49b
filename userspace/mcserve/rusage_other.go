//go:build !unix

package mcserve

import "time"

// rusage is 0 where the platform has no getrusage.
func rusage() (user, system time.Duration) { return 0, 0 }
