// crelay: a minimal stdio <-> TCP relay in C (poll, read, write), the reference
// floor for what one extra relay process costs on the machine. bench/run.sh
// builds it when a C compiler is present: procbench -relay-cmd "crelay {addr}".
#include <poll.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
static char buf[1<<18];
int main(int argc, char **argv) {
  char *a = strdup(argv[1]); char *c = strrchr(a, ':'); *c = 0;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0}; sa.sin_family = AF_INET; sa.sin_port = htons(atoi(c+1)); inet_pton(AF_INET, a, &sa.sin_addr);
  if (connect(s, (struct sockaddr*)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
  int one = 1; setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct pollfd p[2] = {{0, POLLIN}, {s, POLLIN}};
  int inopen = 1;
  for (;;) {
    p[0].fd = inopen ? 0 : -1;
    if (poll(p, 2, -1) < 0) return 1;
    if (p[0].revents) { ssize_t n = read(0, buf, sizeof buf); if (n <= 0) { shutdown(s, SHUT_WR); inopen = 0; } else { for (ssize_t o = 0; o < n;) { ssize_t m = write(s, buf+o, n-o); if (m < 0) return 1; o += m; } } }
    if (p[1].revents) { ssize_t n = read(s, buf, sizeof buf); if (n <= 0) return 0; for (ssize_t o = 0; o < n;) { ssize_t m = write(1, buf+o, n-o); if (m < 0) return 1; o += m; } }
  }
}
