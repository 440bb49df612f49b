package memcache

// MaxRelativeExptime is the largest exptime taken as seconds from now (30
// days); anything larger is an absolute unix time.
const MaxRelativeExptime = 60 * 60 * 24 * 30

// Deadline converts an exptime as a client sends it into an absolute unix
// time in seconds, given the current unix time: 0 means never (returns 0),
// up to MaxRelativeExptime is relative to now, larger is absolute, and a
// negative value is already expired (returns a time in the past, never 0).
// An absolute time at or before now is also already expired.
func Deadline(exptime int32, now int64) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		return Expired(now)
	case exptime <= MaxRelativeExptime:
		return now + int64(exptime)
	case int64(exptime) <= now:
		return Expired(now)
	default:
		return int64(exptime)
	}
}

// Expired returns a deadline that is already past at now and is not 0.
func Expired(now int64) int64 {
	if now > 1 {
		return now - 1
	}
	return -1
}

// TTL is the remaining lifetime of an item with the given deadline as the
// meta protocol reports it (the t flag): -1 for never.
func TTL(deadline, now int64) int64 {
	if deadline == 0 {
		return -1
	}
	if deadline <= now {
		return 0
	}
	return deadline - now
}
