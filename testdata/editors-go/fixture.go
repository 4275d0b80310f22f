// Fixture for procref's editor tests: one deliberate error for gopls.
package main

import "fmt"

// Greeting returns a friendly greeting for name.
func Greeting(name string) string {
	return "hello, " + name
}

func main() {
	var n int = "not an int" // deliberate error
	fmt.Println(Greeting("procref"), n)
}
