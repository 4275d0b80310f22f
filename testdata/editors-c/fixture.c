/* Fixture for procref's editor tests: one deliberate error for clangd. */
#include <stdio.h>

/* greeting returns a friendly greeting. */
static const char *greeting(void) { return "hello, procref"; }

int main(void) {
	puts(greeting());
	return undeclared_name; /* deliberate error */
}
