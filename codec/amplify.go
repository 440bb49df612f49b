package codec

// DefaultAmplification is the default factor A of rule 6.
const DefaultAmplification = 4

// ReplyLimit returns the largest UDP payload that a UDP reply to a request of
// reqLen UDP payload bytes may carry: at most factor times reqLen (rule 6),
// and at most pathMax (what fits the path MTU and the buffer). A factor of 0
// or less disables the amplification bound (pathMax still applies). An error
// reply (a bare header) always fits, since it is never larger than a valid
// request.
func ReplyLimit(reqLen, factor, pathMax int) int {
	limit := pathMax
	if factor > 0 && reqLen*factor < limit {
		limit = reqLen * factor
	}
	return max(limit, 0)
}

// UDPPayloadMax returns the largest UDP payload that fits an interface MTU
// without fragmentation: the MTU less the IP and UDP headers.
func UDPPayloadMax(mtu int, ipv6 bool) int {
	if ipv6 {
		return mtu - ipv6HeaderLen - udpHeaderLen
	}
	return mtu - ipv4MinHeader - udpHeaderLen
}
