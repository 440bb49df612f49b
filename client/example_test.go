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

func ExampleNewRing() {
	ring, err := client.NewRing([]string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The server twemproxy (hash: md5, distribution: ketama) would pick.
	fmt.Println(ring.Pick([]byte("user:42")))
	// Output: 10.0.0.1:11211
}

func ExampleDialCluster() {
	addr1, stop1 := exampleServer()
	defer stop1()
	addr2, stop2 := exampleServer()
	defer stop2()
	ctx := context.Background()

	cl, err := client.DialCluster(ctx, []string{addr1, addr2}, client.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	if err := cl.Set(ctx, []byte("greeting"), []byte("hello"), time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	v, err := cl.Get(ctx, []byte("greeting")) // from the server that owns the key
	fmt.Printf("%s %v\n", v, err)

	err = cl.Set(ctx, []byte("k"), nil, -time.Second)
	fmt.Println(errors.Is(err, client.ErrNegativeTTL))
	// Output:
	// hello <nil>
	// true
}
