package bpf

// The program is compiled with Debian's clang and libbpf-dev headers; the
// generated rebound_bpfel.go and rebound_bpfel.o are committed, so building
// Rebound needs no clang. `make generate` runs this; CI checks the result
// matches what is committed.
//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu" rebound c/rebound.bpf.c
//go:generate go tool bpf2go -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" pass c/pass.bpf.c
