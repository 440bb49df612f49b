package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

func statsCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("stats", "stats --metrics HOST:PORT [--all]", "  rebound stats --metrics 127.0.0.1:9100\n", stderr)
	addr := fs.String("metrics", "127.0.0.1:9100", "the server's --metrics `HOST:PORT`")
	all := fs.Bool("all", false, "also print the Go runtime and process metrics")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + *addr + "/metrics")
	if err != nil {
		fmt.Fprintf(stderr, "rebound stats: %v (is the server running with --metrics %s?)\n", err, *addr)
		return exitFailure
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "rebound stats: %s answered %s\n", *addr, resp.Status)
		return exitFailure
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if *all || strings.HasPrefix(line, "rebound_") && !strings.Contains(line, "_bucket{") {
			fmt.Fprintln(stdout, line)
		}
	}
	return exitOK
}
