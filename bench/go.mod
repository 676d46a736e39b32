module github.com/oomwatch/oomwatch/bench

go 1.26.8

require (
	github.com/euank/go-kmsg-parser v2.0.0+incompatible
	github.com/oomwatch/oomwatch v0.0.0
	github.com/sirupsen/logrus v1.10.2
	k8s.io/klog/v2 v2.140.0
)

require (
	github.com/go-logr/logr v1.4.4
	github.com/google/cadvisor v0.60.6
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/oomwatch/oomwatch => ../
