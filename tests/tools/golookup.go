// Name lookups with Go's own resolver (run with GODEBUG=netdns=go): one
// LookupIPAddr per argument, one line printed per lookup.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
)

func main() {
	resolver := &net.Resolver{PreferGo: true}
	for _, name := range os.Args[1:] {
		addrs, err := resolver.LookupIPAddr(context.Background(), name)
		fmt.Println(name, len(addrs), err)
	}
}
