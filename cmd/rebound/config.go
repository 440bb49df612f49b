package main

import (
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// A config file is TOML whose keys are serve's flag names with '_' for
// '-' (allow_src, memcache_listen, kv_memory, ...); a list is a TOML array
// of strings. Flags given on the command line win over the file.
//
//	iface = "eth0"
//	memcache_listen = ":11211"
//	allow_src = ["10.0.0.0/8", "2001:db8::/32"]
//	trust_src = ["10.1.0.0/16"]
//
// SIGHUP reads the file again and applies what can change while serving
// (reloadable: the allow-list, the trusted sources and the two listen
// addresses); any other change is logged as needing a restart.
var reloadable = map[string]bool{"allow-src": true, "trust-src": true, "listen": true, "memcache-listen": true}

// readConfig reads the TOML file at path into flag values (flag name ->
// value as the flag parses it), refusing keys that are not flags.
func readConfig(path string, fs *flag.FlagSet) (map[string]string, error) {
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := map[string]string{}
	for key, v := range raw {
		name := strings.ReplaceAll(key, "_", "-")
		if name == "config" || fs.Lookup(name) == nil {
			return nil, fmt.Errorf("config %s: unknown setting %q (settings are serve's flags, with _ for -)", path, key)
		}
		switch v := v.(type) {
		case string:
			out[name] = v
		case int64:
			out[name] = strconv.FormatInt(v, 10)
		case bool:
			out[name] = strconv.FormatBool(v)
		case []any:
			parts := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("config %s: %s: a list of strings, got %v", path, key, e)
				}
				parts = append(parts, s)
			}
			out[name] = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("config %s: %s: a string, number, boolean or list of strings, got %T", path, key, v)
		}
	}
	return out, nil
}

// applyConfig sets every flag the file gives that the command line did
// not; it returns the names it set, sorted.
func applyConfig(fs *flag.FlagSet, values map[string]string, onCommandLine map[string]bool) ([]string, error) {
	var set []string
	for name, v := range values {
		if onCommandLine[name] {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("config: %s = %q: %w", strings.ReplaceAll(name, "-", "_"), v, err)
		}
		set = append(set, name)
	}
	sort.Strings(set)
	return set, nil
}
