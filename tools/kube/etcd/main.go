// Command etcd is etcd's server at the version k8s.io/kubernetes requires,
// built from the Go module proxy like the rest of the cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
