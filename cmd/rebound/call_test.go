package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rebound-net/rebound/internal/testutil"
)

func TestCallMemcache(t *testing.T) {
	addr := testutil.StartMemcached(t)
	mc := []string{"call", "--protocol", "memcache", "--target", addr}
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"get", "greeting"}, exitStatus, "MISS"},
		{[]string{"set", "greeting", "hello", "--ttl", "60", "--flags", "7"}, exitOK, "STORED"},
		{[]string{"get", "greeting"}, exitOK, "VALUE greeting flags=7 len=5"},
		{[]string{"--transport", "udp", "get", "greeting"}, exitOK, "hello"},
		{[]string{"raw", "mg greeting v f"}, exitOK, "VA 5 f7\nhello\n"},
		{[]string{"raw", "set k 0 0 2", "hi"}, exitOK, "STORED\n"},
		{[]string{"raw", "bogus"}, exitStatus, "ERROR"},
		{[]string{"del", "greeting"}, exitOK, "DELETED"},
		{[]string{"del", "greeting"}, exitStatus, "NOT_FOUND"},
		{[]string{"--transport", "udp", "get", "greeting"}, exitStatus, "MISS"},
		{[]string{"--transport", "udp", "set", "a", "b"}, exitUsage, ""},
		{[]string{"ping"}, exitUsage, ""},
		{[]string{"get", "a b"}, exitUsage, ""},
		{[]string{"raw"}, exitUsage, ""},
		{[]string{"raw", "a\r\nb"}, exitUsage, ""},
		{[]string{"--flags", "4294967296", "set", "a", "b"}, exitUsage, ""},
		{[]string{"--timeout", "100ms", "raw", "set k 0 0 9"}, exitFailure, ""},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		args := append(append([]string(nil), mc...), c.args...)
		code := run(args, &out, &errb)
		if code != c.code || !strings.Contains(out.String(), c.out) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", c.args, code, c.code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(append(mc, "--json", "get", "k"), &out, &errb); code != exitOK {
		t.Fatalf("json: exit %d %s", code, errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["result"] != "HIT" || m["value"] != "hi" {
		t.Fatalf("json: %q %v", out.String(), err)
	}
}

func TestCallUsage(t *testing.T) {
	for _, args := range [][]string{
		{"call", "--protocol", "redis", "get", "k"},
		{"call", "--transport", "quic", "get", "k"},
		{"call", "--flags", "3", "get", "k"},
		{"call", "raw", "version"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"call", "-h"}, &out, &errb); code != exitOK || !strings.Contains(errb.String(), "raw 'mg greeting v f t'") {
		t.Errorf("call -h: exit %d %q", code, errb.String())
	}
}
