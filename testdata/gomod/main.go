package main

import "fmt"

// Greeting returns a friendly greeting.
func Greeting(name string) string {
	return "hello, " + name
}

func main() {
	var unused int = "not an int" // deliberate error for the tests
	fmt.Println(Greeting("procref"))
}
