// Command emptymain does nothing. bench/run.sh times its exec as the floor
// for starting any Go program on the machine, next to `procref version`
// and /bin/true.
package main

func main() {}
