package memcache

// Fixed reply lines, with their \r\n.
const (
	ReplyStored    = "STORED\r\n"
	ReplyNotStored = "NOT_STORED\r\n"
	ReplyExists    = "EXISTS\r\n"
	ReplyNotFound  = "NOT_FOUND\r\n"
	ReplyDeleted   = "DELETED\r\n"
	ReplyTouched   = "TOUCHED\r\n"
	ReplyOK        = "OK\r\n"
	ReplyEnd       = "END\r\n"
	ReplyError     = "ERROR\r\n"
	// Meta status codes, without flags or line end.
	MetaValue     = "VA"
	MetaHit       = "HD"
	MetaMiss      = "EN"
	MetaNotFound  = "NF"
	MetaNotStored = "NS"
	MetaExists    = "EX"
	MetaNoop      = "MN\r\n"
)

// AppendValue appends a get/gets item: "VALUE <key> <flags> <bytes>
// [<cas>]\r\n<data>\r\n"; the cas is written when withCAS.
func AppendValue(dst, key []byte, flags uint32, data []byte, cas uint64, withCAS bool) []byte {
	dst = AppendValueHeader(dst, key, flags, len(data), cas, withCAS)
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// AppendValueHeader appends only the VALUE line of an item, for callers
// that write the data themselves (then data and "\r\n" must follow).
func AppendValueHeader(dst, key []byte, flags uint32, n int, cas uint64, withCAS bool) []byte {
	dst = append(dst, "VALUE "...)
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = AppendUint(dst, uint64(flags))
	dst = append(dst, ' ')
	dst = AppendUint(dst, uint64(n))
	if withCAS {
		dst = append(dst, ' ')
		dst = AppendUint(dst, cas)
	}
	return append(dst, '\r', '\n')
}

// AppendNumber appends the reply to incr/decr: the new value and \r\n.
func AppendNumber(dst []byte, v uint64) []byte {
	return append(AppendUint(dst, v), '\r', '\n')
}

// AppendVersion appends "VERSION <v>\r\n".
func AppendVersion(dst []byte, v string) []byte {
	dst = append(dst, "VERSION "...)
	dst = append(dst, v...)
	return append(dst, '\r', '\n')
}

// AppendStat appends "STAT <name> <value>\r\n" for a number.
func AppendStat(dst []byte, name string, v uint64) []byte {
	dst = append(dst, "STAT "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	return append(AppendUint(dst, v), '\r', '\n')
}

// AppendStatString appends "STAT <name> <value>\r\n" for a string value.
func AppendStatString(dst []byte, name, v string) []byte {
	dst = append(dst, "STAT "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = append(dst, v...)
	return append(dst, '\r', '\n')
}

// AppendMetaValue starts a meta reply that carries a value: "VA <size>".
// Return flags (AppendMetaFlag...) follow, then AppendMetaEnd, then the
// data with AppendData.
func AppendMetaValue(dst []byte, size int) []byte {
	dst = append(dst, "VA "...)
	return AppendUint(dst, uint64(size))
}

// AppendMetaCode starts a meta reply without a value: code is one of
// MetaHit, MetaMiss, MetaNotFound, MetaNotStored, MetaExists.
func AppendMetaCode(dst []byte, code string) []byte { return append(dst, code...) }

// AppendMetaFlag appends " <f><v>" for a numeric return flag.
func AppendMetaFlag(dst []byte, f byte, v uint64) []byte {
	return AppendUint(append(dst, ' ', f), v)
}

// AppendMetaFlagInt appends " <f><v>" for a signed return flag (t-1).
func AppendMetaFlagInt(dst []byte, f byte, v int64) []byte {
	return AppendInt(append(dst, ' ', f), v)
}

// AppendMetaFlagBytes appends " <f><b>" (k, or with f == 0 a token as sent
// such as an opaque).
func AppendMetaFlagBytes(dst []byte, f byte, b []byte) []byte {
	dst = append(dst, ' ')
	if f != 0 {
		dst = append(dst, f)
	}
	return append(dst, b...)
}

// AppendMetaEnd ends a meta reply line.
func AppendMetaEnd(dst []byte) []byte { return append(dst, '\r', '\n') }

// AppendData appends a data block and its \r\n.
func AppendData(dst, data []byte) []byte {
	return append(append(dst, data...), '\r', '\n')
}
