package loadgen_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rebound-net/rebound/loadgen"
	"github.com/rebound-net/rebound/userspace"
)

func ExampleBench() {
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1,
		Handler: userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{Target: srv.Addr().String(), Duration: 200 * time.Millisecond, Window: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Received > 0, res.Lost == 0)
	// Output: true true
}
