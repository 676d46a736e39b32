module github.com/oomwatch/oomwatch

go 1.26.8

require (
	github.com/euank/go-kmsg-parser v2.0.0+incompatible // indirect
	github.com/sirupsen/logrus v1.10.2 // indirect
	golang.org/x/sys v0.13.0 // indirect
)
