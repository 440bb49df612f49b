package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rebound-net/rebound/client"
	"github.com/rebound-net/rebound/userspace"
)

// exampleServer starts a server on loopback for the examples and returns
// its address and a stop function.
func exampleServer() (string, func()) {
	srv, err := userspace.NewServer(userspace.Config{Mode: userspace.ModeUDP, Listen: "127.0.0.1:0", Workers: 1,
		Handler: userspace.NewService(userspace.ServiceConfig{KVMemory: 8 << 20})})
	if err != nil {
		panic(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		panic(err)
	}
	return srv.Addr().String(), srv.Stop
}

func Example() {
	addr, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	if err := c.Set(ctx, []byte("greeting"), []byte("hello"), time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	v, err := c.Get(ctx, []byte("greeting"))
	fmt.Printf("%s %v\n", v, err)

	_, err = c.Get(ctx, []byte("nobody"))
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// hello <nil>
	// true
}

func ExampleClient_Ping() {
	addr, stop := exampleServer()
	defer stop()
	c, _ := client.Dial(context.Background(), addr, client.Options{TCP: true})
	defer c.Close()
	echo, err := c.Ping(context.Background(), []byte("are you there?"))
	fmt.Printf("%s %v\n", echo, err)
	// Output: are you there? <nil>
}
